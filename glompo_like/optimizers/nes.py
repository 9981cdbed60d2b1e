"""Natural evolution strategies: xNES (full covariance) and SNES (separable).

Both follow Wierstra, Schaul, Glasmachers, Sun, Peters & Schmidhuber, "Natural Evolution
Strategies", JMLR 15 (2014): Gaussian search distributions updated along the natural
gradient of the expected fitness, with rank-based fitness shaping and the default
learning rates of that paper (Table 1).

Bounds.  Samples ``x = mean + A z`` are clipped into the box before they are asked; the
value told for a clipped point is used as the value of its unclipped sample ``z``, i.e.
the strategy minimises ``f(clip(x))``, which is defined everywhere and equals ``f`` inside
the box.  After each update the mean is clipped into the box as well, so the search stays
centred on feasible points.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections import deque
from numbers import Integral, Real
from typing import Any

import numpy as np

from ..errors import ConfigError
from .base import BaseOptimizer, GenerationInTurns

__all__ = ["XNESOptimizer", "SNESOptimizer"]


def default_popsize(dim: int) -> int:
    """``4 + floor(3 ln dim)`` (the NES and CMA-ES default)."""
    return 4 + int(3 * math.log(dim))


def utilities(n: int) -> np.ndarray:
    """Fitness-shaping utilities for ranks ``1..n`` (best first): ``max(0, ln(n/2 + 1) -
    ln k)`` normalised to sum to one, minus ``1/n`` (so they sum to zero)."""
    raw = np.maximum(0.0, math.log(n / 2 + 1) - np.log(np.arange(1, n + 1)))
    return raw / raw.sum() - 1.0 / n


def _number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and bool(np.isfinite(value))


class _NES(GenerationInTurns, BaseOptimizer):
    """Shared machinery: sampling, shaping, clipping and stopping.  Subclasses define the
    search distribution (``_transform``, ``_update``, ``_coordinate_std`` and their state)."""

    _name = "NES"

    def __init__(
        self,
        bounds: Any,
        x0: Any = None,
        seed: Any = None,
        *,
        sigma0: float | None = None,
        popsize: int | None = None,
        mirrored: bool = False,
        eta_mu: float = 1.0,
        eta_sigma: float | None = None,
        tolx: float = 1e-12,
        tolfun: float = 1e-12,
        async_eval: bool = False,
    ) -> None:
        super().__init__(bounds, x0, seed)
        self.check_options(
            sigma0=sigma0,
            popsize=popsize,
            mirrored=mirrored,
            eta_mu=eta_mu,
            eta_sigma=eta_sigma,
            tolx=tolx,
            tolfun=tolfun,
            async_eval=async_eval,
        )
        self.async_eval = async_eval
        dim = self.bounds.dim
        width = self.bounds.width
        mean_width = float(np.mean(width))
        self.sigma0 = 0.25 * mean_width if sigma0 is None else float(sigma0)
        self.mirrored = bool(mirrored)
        lam = default_popsize(dim) if popsize is None else int(popsize)
        if self.mirrored and lam % 2:
            lam += 1  # mirrored samples come in pairs
        self.popsize = lam
        self.eta_mu = float(eta_mu)
        self.eta_sigma = self._default_eta_sigma(dim) if eta_sigma is None else float(eta_sigma)
        self.tolx = float(tolx)
        self.tolfun = float(tolfun)
        self.utilities = utilities(lam)
        self.mean = self.x0.copy()
        # per-coordinate initial spread: sigma0 for an average-width parameter (like CMA)
        self._init_distribution(self.sigma0 * width / mean_width)
        self._z: np.ndarray | None = None  # the standard-normal samples of the open generation
        self.generation = 0
        # best values of recent generations, for the ``tolfun`` test
        self._history: deque[float] = deque(maxlen=10 + math.ceil(30 * dim / lam))
        self._last_range = math.inf

    @classmethod
    def check_options(
        cls,
        sigma0: Any = None,
        popsize: Any = None,
        mirrored: Any = False,
        eta_mu: Any = 1.0,
        eta_sigma: Any = None,
        tolx: Any = 1e-12,
        tolfun: Any = 1e-12,
        async_eval: Any = False,
    ) -> None:
        """Raise :class:`ConfigError` naming the first invalid setting and how to fix it."""
        name = cls._name
        if not isinstance(async_eval, bool):
            raise ConfigError(f"{name}: async_eval must be True or False, got {async_eval!r}")
        if sigma0 is not None and not (_number(sigma0) and sigma0 > 0):
            raise ConfigError(f"{name}: sigma0 must be a positive number (or None), got {sigma0!r}")
        if popsize is not None and (
            isinstance(popsize, bool) or not isinstance(popsize, Integral) or popsize < 2
        ):
            raise ConfigError(
                f"{name}: popsize must be an integer >= 2 or None for 4 + floor(3 ln dim), "
                f"got {popsize!r}"
            )
        if not isinstance(mirrored, (bool, np.bool_)):
            raise ConfigError(f"{name}: mirrored must be True or False, got {mirrored!r}")
        if not (_number(eta_mu) and 0 < eta_mu <= 1):
            raise ConfigError(f"{name}: eta_mu must be a learning rate in (0, 1], got {eta_mu!r}")
        if eta_sigma is not None and not (_number(eta_sigma) and 0 < eta_sigma <= 1):
            raise ConfigError(
                f"{name}: eta_sigma must be a learning rate in (0, 1] or None for the default, "
                f"got {eta_sigma!r}"
            )
        for key, value in (("tolx", tolx), ("tolfun", tolfun)):
            if not (_number(value) and value >= 0):
                raise ConfigError(f"{name}: {key} must be a number >= 0, got {value!r}")

    @property
    def generation_size(self) -> int:
        return self.popsize

    # ------------------------------------------------------------------ ask / tell
    def _ask(self) -> np.ndarray:
        dim = self.bounds.dim
        if self.mirrored:
            half = self.rng.standard_normal((self.popsize // 2, dim))
            z = np.concatenate([half, -half])
        else:
            z = self.rng.standard_normal((self.popsize, dim))
        self._z = z
        return self.bounds.clip(self.mean + self._transform(z))

    def _tell(self, xs: np.ndarray, fs: np.ndarray) -> None:
        if self._z is None or len(self._z) != len(fs):
            raise ValueError(
                f"{type(self).__name__}.tell() expects the {self.popsize} points of the last ask()"
            )
        order = np.argsort(fs, kind="stable")
        u = np.empty(len(fs))
        u[order] = self.utilities  # best point gets the largest utility
        self._update(self._z, u)
        self.mean = self.bounds.clip(self.mean)
        self._z = None
        self.generation += 1
        self._history.append(float(fs.min()))
        self._last_range = float(fs.max() - fs.min())

    # ------------------------------------------------------------------ stopping
    def _stop(self) -> dict[str, Any]:
        if self.generation == 0:
            return {}
        reasons: dict[str, Any] = {}
        step = float(np.max(self._coordinate_std() / self.bounds.width))
        if step <= self.tolx:
            reasons["tolx"] = step
        if self._last_range == 0.0:
            reasons["flatfitness"] = 0.0
        if len(self._history) == self._history.maxlen:
            spread = max(self._last_range, max(self._history) - min(self._history))
            if spread <= self.tolfun:
                reasons["tolfun"] = spread
        return reasons

    def _inject(self, x: np.ndarray, fx: float) -> None:
        """Move the mean to ``x`` if it is better than everything seen so far."""
        if fx < self.result.fx:
            self.mean = self.bounds.clip(x)

    # ------------------------------------------------------------------ state
    def _get_state(self) -> dict[str, Any]:
        return {
            "mean": self.mean.copy(),
            "z": None if self._z is None else self._z.copy(),
            "generation": self.generation,
            "history": list(self._history),
            "last_range": self._last_range,
            "distribution": self._distribution_state(),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self.mean = np.array(state["mean"], dtype=float)
        self._z = None if state["z"] is None else np.array(state["z"], dtype=float)
        self.generation = int(state["generation"])
        self._history.clear()
        self._history.extend(state["history"])
        self._last_range = float(state["last_range"])
        self._set_distribution_state(state["distribution"])

    def _settings(self) -> str:
        return (
            f"sigma0={self.sigma0:g}, popsize={self.popsize}, mirrored={self.mirrored}, "
            f"eta_mu={self.eta_mu:g}, eta_sigma={self.eta_sigma:g}, tolx={self.tolx:g}, "
            f"tolfun={self.tolfun:g}" + (", async_eval=True" if self.async_eval else "")
        )

    # ------------------------------------------------------------------ distribution hooks
    @staticmethod
    @abstractmethod
    def _default_eta_sigma(dim: int) -> float: ...

    @abstractmethod
    def _init_distribution(self, stds: np.ndarray) -> None:
        ...

    @abstractmethod
    def _transform(self, z: np.ndarray) -> np.ndarray:
        """Map standard-normal rows ``z`` to steps from the mean."""

    @abstractmethod
    def _update(self, z: np.ndarray, u: np.ndarray) -> None:
        """Natural-gradient update of the mean and the distribution from utilities ``u``."""

    @abstractmethod
    def _coordinate_std(self) -> np.ndarray:
        ...

    @abstractmethod
    def _distribution_state(self) -> dict[str, Any]:
        ...

    @abstractmethod
    def _set_distribution_state(self, state: dict[str, Any]) -> None:
        ...


class XNESOptimizer(_NES):
    """Exponential NES: a full-covariance Gaussian ``N(mean, sigma^2 B B^T)`` with
    ``det B = 1``, updated through the matrix exponential (so ``B`` stays invertible).

    Parameters
    ----------
    sigma0:
        Initial step size.  Default: a quarter of the mean width of the bounds; each
        coordinate's initial spread is scaled by its width relative to the mean width.
    popsize:
        Samples per generation.  Default ``4 + floor(3 ln dim)``.
    mirrored:
        Sample ``z`` and ``-z`` in pairs (reduces the variance of the gradient estimate).
        Default ``False``.  An odd ``popsize`` is then increased by one.
    eta_mu:
        Learning rate of the mean.  Default ``1``.
    eta_sigma:
        Learning rate of the step size and of the shape matrix ``B``.  Default
        ``(9 + 3 ln dim) / (5 dim sqrt(dim))`` (Wierstra et al. 2014).
    tolx:
        Stop (reason ``"tolx"``) when the standard deviation of every coordinate is below
        ``tolx`` times its range.  Default ``1e-12``.
    tolfun:
        Stop (reason ``"tolfun"``) when the values of the last generation and the best
        values of the last ``10 + ceil(30 dim / popsize)`` generations span less than
        ``tolfun``.  Default ``1e-12``.  A generation of identical values stops with
        reason ``"flatfitness"``.
    async_eval:
        Take each value as its evaluation finishes and tell the generation, in candidate
        order, once all are in (see :class:`~glompo_like.optimizers.base.GenerationInTurns`):
        the same search, seeded runs give the same result.

    See the module docstring for how bounds are handled.
    """

    _name = "XNESOptimizer"

    @staticmethod
    def _default_eta_sigma(dim: int) -> float:
        return (9 + 3 * math.log(dim)) / (5 * dim * math.sqrt(dim))

    def _init_distribution(self, stds: np.ndarray) -> None:
        # A = diag(stds) = sigma * B with det B = 1
        self.sigma = float(np.exp(np.mean(np.log(stds))))
        self.B = np.diag(stds / self.sigma)

    def _transform(self, z: np.ndarray) -> np.ndarray:
        return self.sigma * z @ self.B.T

    def _update(self, z: np.ndarray, u: np.ndarray) -> None:
        from scipy.linalg import expm

        dim = self.bounds.dim
        g_delta = u @ z
        g_m = (z.T * u) @ z - u.sum() * np.eye(dim)
        g_sigma = np.trace(g_m) / dim
        g_b = g_m - g_sigma * np.eye(dim)
        self.mean = self.mean + self.eta_mu * self.sigma * self.B @ g_delta
        self.sigma *= math.exp(0.5 * self.eta_sigma * g_sigma)
        self.B = self.B @ expm(0.5 * self.eta_sigma * g_b)

    def _coordinate_std(self) -> np.ndarray:
        return self.sigma * np.sqrt(np.sum(self.B * self.B, axis=1))

    def _distribution_state(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "B": self.B.copy()}

    def _set_distribution_state(self, state: dict[str, Any]) -> None:
        self.sigma = float(state["sigma"])
        self.B = np.array(state["B"], dtype=float)

    preload_modules = ("scipy.linalg",)

    @classmethod
    def preload(cls) -> None:
        import scipy.linalg  # noqa: F401

    def __repr__(self) -> str:
        return f"XNESOptimizer({self._settings()})"


class SNESOptimizer(_NES):
    """Separable NES: a Gaussian with one standard deviation per coordinate
    (``N(mean, diag(sigma)^2)``); linear cost per sample, suited to many parameters or
    separable problems.

    Parameters
    ----------
    sigma0:
        Initial step size.  Default: a quarter of the mean width of the bounds; each
        coordinate's initial spread is scaled by its width relative to the mean width.
    popsize:
        Samples per generation.  Default ``4 + floor(3 ln dim)``.
    mirrored:
        Sample ``z`` and ``-z`` in pairs.  Default ``False``.  An odd ``popsize`` is then
        increased by one.
    eta_mu:
        Learning rate of the mean.  Default ``1``.
    eta_sigma:
        Learning rate of the standard deviations.  Default ``(3 + ln dim) / (5 sqrt(dim))``
        (Wierstra et al. 2014).
    tolx, tolfun:
        As for :class:`XNESOptimizer`.

    See the module docstring for how bounds are handled.
    """

    _name = "SNESOptimizer"

    @staticmethod
    def _default_eta_sigma(dim: int) -> float:
        return (3 + math.log(dim)) / (5 * math.sqrt(dim))

    def _init_distribution(self, stds: np.ndarray) -> None:
        self.sigmas = stds.astype(float).copy()

    def _transform(self, z: np.ndarray) -> np.ndarray:
        return z * self.sigmas

    def _update(self, z: np.ndarray, u: np.ndarray) -> None:
        g_mu = u @ z
        g_sigma = u @ (z * z - 1.0)
        self.mean = self.mean + self.eta_mu * self.sigmas * g_mu
        self.sigmas = self.sigmas * np.exp(0.5 * self.eta_sigma * g_sigma)

    def _coordinate_std(self) -> np.ndarray:
        return self.sigmas

    def _distribution_state(self) -> dict[str, Any]:
        return {"sigmas": self.sigmas.copy()}

    def _set_distribution_state(self, state: dict[str, Any]) -> None:
        self.sigmas = np.array(state["sigmas"], dtype=float)

    def __repr__(self) -> str:
        return f"SNESOptimizer({self._settings()})"
