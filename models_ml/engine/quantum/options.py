"""Names and knobs of the optimisation methods, importable without qiskit or scipy.

``manage.py optimize --help`` builds its parser from these; ``solvers`` (which loads qiskit)
maps each name to its solver.
"""

from __future__ import annotations

from dataclasses import dataclass

from models_ml.engine.quantum.errors import OptimizationError

METHOD_NAMES = ("qaoa", "vqe", "anneal", "exact", "greedy", "meanvar")
PROBLEMS = ("portfolio", "minvar", "features")


@dataclass(frozen=True, slots=True)
class SolverOptions:
    """Knobs of the variational and annealing methods (all seeded)."""

    reps: int = 1
    shots: int = 1024
    seed: int = 0
    maxiter: int = 100
    optimizer: str = "cobyla"
    warm_start: bool = False
    penalty: float | None = None
    num_reads: int = 100
    num_sweeps: int = 1000

    def check(self) -> None:
        """Raise OptimizationError on values no solver accepts."""
        if not 1 <= self.reps <= 5:
            raise OptimizationError("reps must be between 1 and 5")
        if self.shots < 1 or self.maxiter < 1 or self.num_reads < 1 or self.num_sweeps < 1:
            raise OptimizationError("shots, maxiter, num_reads and num_sweeps must be positive")
        if self.optimizer not in ("cobyla", "spsa"):
            raise OptimizationError(f"unknown optimizer {self.optimizer!r}; use cobyla or spsa")
