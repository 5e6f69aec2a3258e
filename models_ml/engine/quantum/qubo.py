"""QUBO conversion and the check that its penalties keep every optimum feasible."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from qiskit_optimization import QuadraticProgram
from qiskit_optimization.converters import QuadraticProgramToQubo

from models_ml.engine.quantum.errors import OptimizationError
from models_ml.engine.quantum.problems import Problem

# 2**22 bitstrings is about four million rows: the largest brute-force check that stays cheap.
MAX_CHECK_QUBITS = 22


@dataclass(frozen=True)
class Qubo:
    """A problem's program, its QUBO and the converter that maps bitstrings back."""

    program: QuadraticProgram
    qubo: QuadraticProgram
    converter: QuadraticProgramToQubo

    @property
    def qubits(self) -> int:
        """Return the number of binary variables (qubits)."""
        return self.qubo.get_num_vars()

    @property
    def penalty(self) -> float:
        """Return the penalty the converter used."""
        return float(self.converter.penalty)

    def decode(self, bits: np.ndarray) -> np.ndarray:
        """Return the original variables encoded by a QUBO bitstring."""
        return np.asarray(self.converter.interpret(np.asarray(bits, dtype=float)), dtype=float)

    def energies(self, bits: np.ndarray) -> np.ndarray:
        """Return the QUBO objective (to be minimised) of each row of ``bits``."""
        obj = self.qubo.objective
        linear = obj.linear.to_array()
        quadratic = obj.quadratic.to_array()
        values = obj.constant + bits @ linear + np.einsum("ki,ij,kj->k", bits, quadratic, bits)
        return values * obj.sense.value  # sense.value: 1 minimise, -1 maximise


def to_qubo(problem: Problem, penalty: float | None = None) -> Qubo:
    """Convert ``problem`` to a QUBO (library penalty unless one is given)."""
    if penalty is not None and penalty <= 0:
        raise OptimizationError("penalty must be positive")
    program = problem.quadratic_program()
    converter = QuadraticProgramToQubo(penalty=penalty)
    return Qubo(program=program, qubo=converter.convert(program), converter=converter)


def all_bitstrings(n: int) -> np.ndarray:
    """Return every n-bit string as rows of 0/1 floats (bit i is variable i)."""
    codes = np.arange(2**n, dtype=np.int64)
    return ((codes[:, None] >> np.arange(n)) & 1).astype(float)


def check_penalty(problem: Problem, qubo: Qubo) -> np.ndarray:
    """Return the original solution of a QUBO minimiser; raise if any minimiser is infeasible.

    Brute force over all 2**qubits bitstrings: the QUBO's minimisers must all decode to
    feasible solutions, else the penalty is too small for this instance.
    """
    if qubo.qubits > MAX_CHECK_QUBITS:
        raise OptimizationError(f"{qubo.qubits} qubits: too many to check by brute force")
    bits = all_bitstrings(qubo.qubits)
    energies = qubo.energies(bits)
    low = energies.min()
    minimisers = bits[np.abs(energies - low) <= 1e-9 * max(1.0, abs(low))]
    decoded = np.array([qubo.decode(b) for b in minimisers])
    if not np.all(problem.feasible(decoded)):
        raise OptimizationError(f"penalty {qubo.penalty:.6g} lets an infeasible QUBO optimum win")
    return decoded[0]
