r"""Automatic guides: variational families built from a model's latent sites.

An autoguide runs the model once (on its first call, hidden from every
other handler) to find the latent sites, their shapes and supports, and a
starting point from ``init_loc_fn``. Each latent site with support ``S`` is
then represented in unconstrained space, ``value = biject_to(S)(u)``, and
the guide's density of ``value`` is that of ``u`` minus the
log-determinant of the map's Jacobian.

* :class:`AutoNormal`: independent normals on every unconstrained
  coordinate (mean field).
* :class:`AutoMultivariateNormal`: one multivariate normal over all
  unconstrained coordinates, with a full covariance :math:`L L^\top`.
* :class:`AutoDelta`: a point mass at each site; SVI with it finds the MAP
  estimate in constrained space.
* :class:`AutoLaplaceApproximation`: a point mass in unconstrained space
  during SVI (the MAP there), then a normal centred at it with covariance
  the inverse Hessian of the negative log joint.

In the guide, each site ``name`` is sampled from a point mass (``dist.Delta``) at
``biject_to(S)(u)`` whose log density is the needed correction
:math:`-\log|\det J|`, and ``u`` itself is an auxiliary site of the guide.
The models that these guides support have no subsampling plates around
latent sites (the guide draws every element of a site at once). Parameter
names follow NumPyro (``{site}_auto_loc``, ``{site}_auto_scale``,
``auto_loc``, ``auto_scale_tril``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import difflux.core as dx
from difflux.core._backend import backend_of_value
from difflux.core._core import value_of

from .. import dist
from .._primitives import param, prng_key, sample
from ..dist import biject_to, constraints
from ..handlers import block, seed, substitute, trace
from ._init_strategy import init_to_median, init_to_uniform, is_latent
from ._util import potential_energy

__all__ = ["AutoDelta", "AutoGuide", "AutoLaplaceApproximation", "AutoMultivariateNormal", "AutoNormal"]


class _Site:
    """One latent site of the model, with the support, transform, initial value and shapes a guide needs."""

    def __init__(self, name: str, value: Any, support: Any, event_ndim: int) -> None:
        self.name = name
        self.support = support
        self.transform = biject_to(support)
        self.value = value
        self.init_unconstrained = self.transform.inv(value)
        self.shape = tuple(value.shape)
        self.unconstrained_shape = tuple(self.init_unconstrained.shape)
        self.size = 1
        for n in self.unconstrained_shape:
            self.size *= n
        self.event_ndim = event_ndim

    def constrain(self, u: Any) -> Any:
        return self.transform(u)

    def log_det(self, u: Any, value: Any) -> Any:
        """Return the log-determinant of the site's map at ``u``, summed over the site (a scalar)."""
        return dx.sum(self.transform.log_abs_det_jacobian(u, value))


class AutoGuide:
    """Base class of automatic guides.

    Args:
        model: the model the guide approximates.
        prefix: the prefix of the guide's param and auxiliary site names.
        init_loc_fn: the strategy for the starting point of each site's
            location (see ``ppl.infer.init_to_median`` and the others).
    """

    def __init__(self, model: Callable[..., Any], *, prefix: str = "auto", init_loc_fn: Any = init_to_uniform):
        self.model = model
        self.prefix = prefix
        self.init_loc_fn = init_loc_fn
        self.sites: dict[str, _Site] | None = None
        self._args: tuple[Any, ...] = ()
        self._kwargs: dict[str, Any] = {}

    def _setup_prototype(self, *args: Any, **kwargs: Any) -> None:
        key = prng_key()
        runnable = substitute(seed(self.model, rng_seed=key), substitute_fn=self.init_loc_fn)
        with block():
            prototype = trace(runnable).get_trace(*args, **kwargs)
        sites: dict[str, _Site] = {}
        for name, site in prototype.items():
            if not is_latent(site):
                continue
            for frame in site["cond_indep_stack"]:
                if frame.size < frame.full_size:
                    raise NotImplementedError(
                        f"{type(self).__name__} does not support the latent site {name!r} inside the "
                        f"subsampling plate {frame.name!r}; write a guide by hand for local latent variables "
                        "under subsampling"
                    )
            fn = site["fn"]
            if getattr(fn.support, "is_discrete", False):
                raise NotImplementedError(
                    f"{type(self).__name__} needs continuous latent sites, but {name!r} has the discrete "
                    f"support {fn.support!r}"
                )
            sites[name] = _Site(name, site["value"], fn.support, len(site["value"].shape))
        if not sites:
            raise ValueError(f"{type(self).__name__} found no latent sites in the model: there is nothing to guide")
        self.sites = sites
        self._args, self._kwargs = args, kwargs

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Sample every latent site of the model; return the values by name."""
        if self.sites is None:
            self._setup_prototype(*args, **kwargs)
        return self._sample_sites()

    def _sample_sites(self) -> dict[str, Any]:
        raise NotImplementedError

    def _site_from_unconstrained(self, site: _Site, u: Any) -> Any:
        value = site.constrain(u)
        log_density = -site.log_det(u, value)
        return sample(site.name, dist.Delta(value, log_density=log_density, event_dim=site.event_ndim))

    def _checked_sites(self) -> dict[str, _Site]:
        if self.sites is None:
            raise RuntimeError(
                f"this {type(self).__name__} has not seen the model yet; run SVI (or call the guide under "
                "ppl.handlers.seed) before asking for posterior draws"
            )
        return self.sites

    def sample_posterior(
        self, rng_key: Any, params: dict[str, Any], sample_shape: tuple[int, ...] = ()
    ) -> dict[str, Any]:
        """Draw the latent sites from the fitted guide.

        Args:
            rng_key: a key from ``dx.random.key``.
            params: the fitted parameters (``SVI.run(...).params``).
            sample_shape: the shape of independent draws in front of each
                site's shape.

        Returns:
            A dict from site name to constrained values of shape
            ``sample_shape + site shape``.
        """
        raise NotImplementedError

    def median(self, params: dict[str, Any]) -> dict[str, Any]:
        """Return the posterior median of each latent site: the location mapped to constrained space."""
        raise NotImplementedError


# --------------------------------------------------------------------------
# Mean field
# --------------------------------------------------------------------------


class AutoNormal(AutoGuide):
    r"""A mean-field normal guide in unconstrained space.

    .. math::

        u_i \sim \mathcal{N}(\mathrm{loc}_i, \mathrm{scale}_i^2), \qquad
        \mathrm{value} = \mathrm{biject\_to}(S)(u)

    with parameters ``{site}_auto_loc`` and ``{site}_auto_scale`` (positive)
    of the site's unconstrained shape.

    Args:
        model: the model.
        prefix: the name prefix.
        init_loc_fn: the starting point of the locations.
        init_scale: the initial scale of every coordinate.
    """

    def __init__(
        self,
        model: Callable[..., Any],
        *,
        prefix: str = "auto",
        init_loc_fn: Any = init_to_uniform,
        init_scale: float = 0.1,
    ) -> None:
        if init_scale <= 0:
            raise ValueError(f"AutoNormal needs init_scale > 0, got {init_scale}")
        self.init_scale = init_scale
        super().__init__(model, prefix=prefix, init_loc_fn=init_loc_fn)

    def _names(self, site: str) -> tuple[str, str]:
        return f"{site}_{self.prefix}_loc", f"{site}_{self.prefix}_scale"

    def _sample_sites(self) -> dict[str, Any]:
        out = {}
        for name, site in self._checked_sites().items():
            loc_name, scale_name = self._names(name)
            init = site.init_unconstrained
            loc = param(loc_name, init)
            scale = param(scale_name, dx.full_like(init, self.init_scale), constraint=constraints.positive)
            base = dist.Normal(loc, scale).to_event(len(site.unconstrained_shape))
            u = sample(f"_{name}_{self.prefix}_unconstrained", base, infer={"is_auxiliary": True})
            out[name] = self._site_from_unconstrained(site, u)
        return out

    def sample_posterior(
        self, rng_key: Any, params: dict[str, Any], sample_shape: tuple[int, ...] = ()
    ) -> dict[str, Any]:
        out = {}
        sites = self._checked_sites()
        keys = dx.random.split(rng_key, len(sites))
        for key, (name, site) in zip(keys, sites.items()):
            loc_name, scale_name = self._names(name)
            loc, scale = params[loc_name], params[scale_name]
            noise = dx.random.normal(key, tuple(sample_shape) + site.unconstrained_shape, dtype=loc.dtype)
            out[name] = site.constrain(loc + scale * noise)
        return out

    def median(self, params: dict[str, Any]) -> dict[str, Any]:
        return {name: site.constrain(params[self._names(name)[0]]) for name, site in self._checked_sites().items()}


# --------------------------------------------------------------------------
# Point mass (MAP)
# --------------------------------------------------------------------------


class AutoDelta(AutoGuide):
    """A point-mass guide: SVI with it finds the maximum a posteriori (MAP) estimate.

    Each latent site takes the value of the parameter ``{site}_auto_loc``,
    constrained to the site's support. The guide's log density is 0, so the
    loss is the negative log joint of the model at those values.
    """

    def __init__(self, model: Callable[..., Any], *, prefix: str = "auto", init_loc_fn: Any = init_to_median):
        super().__init__(model, prefix=prefix, init_loc_fn=init_loc_fn)

    def _sample_sites(self) -> dict[str, Any]:
        out = {}
        for name, site in self._checked_sites().items():
            value = param(f"{name}_{self.prefix}_loc", site.value, constraint=site.support)
            out[name] = sample(name, dist.Delta(value, event_dim=site.event_ndim))
        return out

    def sample_posterior(
        self, rng_key: Any, params: dict[str, Any], sample_shape: tuple[int, ...] = ()
    ) -> dict[str, Any]:
        out = {}
        for name, site in self._checked_sites().items():
            value = params[f"{name}_{self.prefix}_loc"]
            out[name] = dx.broadcast_to(value, tuple(sample_shape) + site.shape)
        return out

    def median(self, params: dict[str, Any]) -> dict[str, Any]:
        return {name: params[f"{name}_{self.prefix}_loc"] for name in self._checked_sites()}


# --------------------------------------------------------------------------
# Guides over the joint unconstrained vector
# --------------------------------------------------------------------------


class _AutoContinuous(AutoGuide):
    """A guide over all latent sites flattened and concatenated into one unconstrained vector."""

    def _pack(self, parts: dict[str, Any]) -> Any:
        return dx.concat([dx.reshape(parts[name], (-1,)) for name in self._checked_sites()])

    def _unpack(self, z: Any) -> dict[str, Any]:
        """Split vectors ``z`` (shape ``batch + (n,)``) into the sites' unconstrained arrays."""
        out, start = {}, 0
        batch = tuple(z.shape[:-1])
        for name, site in self._checked_sites().items():
            out[name] = dx.reshape(z[..., start : start + site.size], batch + site.unconstrained_shape)
            start += site.size
        return out

    def _init_vector(self) -> Any:
        return self._pack({name: site.init_unconstrained for name, site in self._checked_sites().items()})

    def _sample_from_latent(self, z: Any) -> dict[str, Any]:
        parts = self._unpack(z)
        return {name: self._site_from_unconstrained(site, parts[name]) for name, site in self._checked_sites().items()}

    def _constrain_vectors(self, z: Any) -> dict[str, Any]:
        parts = self._unpack(z)
        return {name: site.constrain(parts[name]) for name, site in self._checked_sites().items()}

    def _draw_normal(self, rng_key: Any, loc: Any, scale_tril: Any, sample_shape: tuple[int, ...]) -> dict[str, Any]:
        noise = dx.random.normal(rng_key, tuple(sample_shape) + tuple(loc.shape), dtype=loc.dtype)
        z = loc + dx.matmul(noise, dx.matrix_transpose(scale_tril))
        return self._constrain_vectors(z)


class AutoMultivariateNormal(_AutoContinuous):
    r"""A multivariate normal guide over the joint unconstrained vector.

    .. math::

        z \sim \mathcal{N}(\mathrm{loc}, L L^\top)

    with parameters ``auto_loc`` and ``auto_scale_tril`` (lower triangular
    with a positive diagonal), so it captures posterior correlations
    between all coordinates of all sites.

    Args:
        model: the model.
        prefix: the name prefix.
        init_loc_fn: the starting point of the location.
        init_scale: the initial diagonal of ``L``.
    """

    def __init__(
        self,
        model: Callable[..., Any],
        *,
        prefix: str = "auto",
        init_loc_fn: Any = init_to_uniform,
        init_scale: float = 0.1,
    ) -> None:
        if init_scale <= 0:
            raise ValueError(f"AutoMultivariateNormal needs init_scale > 0, got {init_scale}")
        self.init_scale = init_scale
        super().__init__(model, prefix=prefix, init_loc_fn=init_loc_fn)

    def _sample_sites(self) -> dict[str, Any]:
        init = self._init_vector()
        loc = param(f"{self.prefix}_loc", init)
        eye = dx.eye(init.shape[0], dtype=init.dtype, backend=_backend(init))
        scale_tril = param(f"{self.prefix}_scale_tril", self.init_scale * eye, constraint=constraints.lower_cholesky)
        latent = dist.MultivariateNormal(loc, scale_tril=scale_tril)
        z = sample(f"_{self.prefix}_latent", latent, infer={"is_auxiliary": True})
        return self._sample_from_latent(z)

    def sample_posterior(
        self, rng_key: Any, params: dict[str, Any], sample_shape: tuple[int, ...] = ()
    ) -> dict[str, Any]:
        return self._draw_normal(
            rng_key, params[f"{self.prefix}_loc"], params[f"{self.prefix}_scale_tril"], sample_shape
        )

    def median(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._constrain_vectors(params[f"{self.prefix}_loc"])

    def covariance(self, params: dict[str, Any]) -> Any:
        """Return the covariance ``L L^T`` of the unconstrained vector."""
        scale_tril = params[f"{self.prefix}_scale_tril"]
        return dx.matmul(scale_tril, dx.matrix_transpose(scale_tril))


class AutoLaplaceApproximation(_AutoContinuous):
    r"""The Laplace approximation around the MAP point in unconstrained space.

    During SVI the guide is a point mass at ``auto_loc`` in unconstrained
    space, so SVI maximises the unconstrained log joint (Jacobian included).
    Afterwards the posterior is approximated by

    .. math::

        z \sim \mathcal{N}\left(\mathrm{loc}, H^{-1}\right), \qquad
        H = \nabla^2_z U(z)\big|_{z = \mathrm{loc}},

    with :math:`U` the model's potential energy (negative log joint in
    unconstrained space, as ``initialize_model`` defines it). The Hessian
    uses the model arguments of the guide's first call.
    """

    def __init__(self, model: Callable[..., Any], *, prefix: str = "auto", init_loc_fn: Any = init_to_median):
        super().__init__(model, prefix=prefix, init_loc_fn=init_loc_fn)

    def _sample_sites(self) -> dict[str, Any]:
        z = param(f"{self.prefix}_loc", self._init_vector())
        return self._sample_from_latent(z)

    def _potential(self, params: dict[str, Any]) -> Callable[[Any], Any]:
        others = {name: value for name, value in params.items() if name != f"{self.prefix}_loc"}
        model = substitute(self.model, data=others) if others else self.model

        def potential(z: Any) -> Any:
            return potential_energy(model, self._args, self._kwargs, self._unpack(z))

        return potential

    def covariance(self, params: dict[str, Any]) -> Any:
        """Return the inverse Hessian of the potential energy at ``auto_loc``."""
        loc = params[f"{self.prefix}_loc"]
        hessian = dx.hessian(self._potential(params))(loc)
        hessian = 0.5 * (hessian + dx.matrix_transpose(hessian))
        return dx.linalg.inv(hessian)

    def scale_tril(self, params: dict[str, Any]) -> Any:
        """Return the Cholesky factor of :meth:`covariance`.

        Raises:
            ValueError: when the Hessian is not positive definite (the
                location is not a local maximum of the log joint).
        """
        covariance = self.covariance(params)
        scale_tril = dx.linalg.cholesky(covariance)
        if not bool(dx.all(dx.isfinite(scale_tril))):
            raise ValueError(
                "the Hessian of the potential at auto_loc is not positive definite, so auto_loc is no local "
                "maximum of the log joint; run SVI for more steps or with a smaller learning rate"
            )
        return scale_tril

    def sample_posterior(
        self, rng_key: Any, params: dict[str, Any], sample_shape: tuple[int, ...] = ()
    ) -> dict[str, Any]:
        return self._draw_normal(rng_key, params[f"{self.prefix}_loc"], self.scale_tril(params), sample_shape)

    def median(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._constrain_vectors(params[f"{self.prefix}_loc"])


def _backend(x: Any) -> str:
    return backend_of_value(value_of(x)) or dx.default_backend()
