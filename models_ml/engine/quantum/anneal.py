"""Simulated annealing on a QUBO through dimod's sampler interface (where D-Wave plugs in)."""

from __future__ import annotations

import dimod
import numpy as np
from dwave.samplers import SimulatedAnnealingSampler

from models_ml.engine.quantum.qubo import Qubo


def to_bqm(qubo: Qubo) -> dimod.BinaryQuadraticModel:
    """Return the QUBO as a binary quadratic model whose energy is to be minimised."""
    obj = qubo.qubo.objective
    sign = obj.sense.value  # 1 minimise, -1 maximise: a BQM always minimises
    linear = obj.linear.to_array() * sign
    quadratic = obj.quadratic.to_array() * sign
    n = len(linear)
    bqm = dimod.BinaryQuadraticModel(dimod.BINARY)
    # x_i * x_i == x_i for binaries: the diagonal belongs to the linear terms.
    bqm.add_linear_from({i: linear[i] + quadratic[i, i] for i in range(n)})
    pairs = np.triu(quadratic + quadratic.T, 1)
    rows, cols = np.nonzero(pairs)
    bqm.add_quadratic_from({(int(i), int(j)): pairs[i, j] for i, j in zip(rows, cols, strict=True)})
    bqm.offset = obj.constant * sign
    return bqm


def anneal(
    qubo: Qubo,
    *,
    seed: int,
    reads: int,
    sweeps: int,
    sampler: dimod.Sampler | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample the QUBO; return the distinct bitstrings and how often each was read."""
    bqm = to_bqm(qubo)
    sampler = sampler or SimulatedAnnealingSampler()
    kwargs = {"num_reads": reads, "num_sweeps": sweeps, "seed": seed}
    sampleset = sampler.sample(bqm, **kwargs).aggregate()
    variables = list(range(qubo.qubits))
    bits = np.array([[row[v] for v in variables] for row in sampleset.samples()], dtype=float)
    counts = np.asarray(sampleset.record.num_occurrences, dtype=float)
    return bits, counts
