"""Facility energy per token as a differentiable function of the cold plate's
geometry and the plant's controls: the compact plate -> facility chain of
``[cold_plate] case = <plate>`` as one pure JAX function.

:func:`plate_hall_chain` takes a parsed ``compact_coldplate`` case and a parsed
``facility`` case whose cold plate is a curve table (``[cold_plate] curves``
or ``case``; not a hall of rack networks) and returns a :class:`Chain`:

* ``chain.j_per_token(x)``: facility J/token over the hall's weather period,
  ``x = (channel_width m, fin_thickness m, facility-water supply setpoint K,
  coolant flow scale)``. The compact finite-volume flow and energy solves run
  at the curve flows (:func:`compact.solve`), their ``R_max(q)`` and ``dP(q)``
  replace the facility's cold-plate table (log-log interpolated between flows,
  as a curve file), and every hour of the coupled facility solve follows. Pure JAX:
  ``jax.jit``, ``jax.grad`` and ``jax.jvp`` apply; every solve differentiates
  implicitly (transposed linear systems, ``custom_root`` on each hour).
* ``chain.checked(x)``: the same number as a float, after the checks of
  ``thermo run`` on the plate's solves (:func:`compact.check`) and on every
  hour of the hall (:func:`facility.check`, which also refuses a flow per
  accelerator outside the curve flows): raises :class:`SolveError` rather than
  return an unconverged or impossible result. A gradient is meaningful only at
  a point that passes ``checked``.

The curve flows are the plate case's (``[operating] flow_range`` and
``curve_points``), as when the facility solves ``[cold_plate] case`` itself;
the plate's coolant must be the secondary loop's. The curves are solved at the
plate case's inlet temperature and heat (R per watt), as for a curve file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace

import numpy as np

from aidc_thermo.compile_options import jit
from aidc_thermo.errors import SolveError
from aidc_thermo.io.curves import coolant_label
from aidc_thermo.models import compact, facility

__all__ = ["Chain", "plate_hall_chain"]


@dataclass(frozen=True)
class Chain:
    """A plate and a hall joined by the plate's curves (:func:`plate_hall_chain`)."""

    plate_static: compact.Static
    plate_params: compact.Params
    hall_static: facility.Static
    hall_params: facility.Params
    #: (channel_width m, fin_thickness m, supply setpoint K, flow scale 1): the cases as given
    x0: np.ndarray

    def params_at(self, x):
        """``(plate Params, plate Solution, hall Params)`` at ``x`` (pure JAX):
        the plate solved at its curve flows, its curves put in the hall."""
        import jax.numpy as jnp

        from aidc_thermo.kernels import coupled

        x = jnp.asarray(x)
        pp = replace(self.plate_params, channel_width=x[0], fin_thickness=x[1])
        ps = compact.solve(self.plate_static, pp)
        dt = self.hall_params.hall.t_supply_set.dtype
        table = coupled.CurveColdPlate(
            table_flow=jnp.asarray(self.plate_params.curve_flows, dt),
            table_r=jnp.asarray(ps.curve_r_max, dt),
            table_dp=jnp.asarray(ps.curve_dp, dt),
        )
        hp = self.hall_params._replace(hall=dataclasses.replace(self.hall_params.hall, cold_plate=table))
        return pp, ps, facility.with_controls(hp, x[2].astype(dt), x[3].astype(dt))

    def solve(self, x):
        """``(plate Solution, hall Params, hall Solution)`` at ``x`` (pure JAX)."""
        _, ps, hp = self.params_at(x)
        return ps, hp, facility.solve(self.hall_static, hp)

    def j_per_token(self, x):
        """Facility energy per token (J) over the hall's period at ``x`` (pure JAX scalar)."""
        from aidc_thermo.models.accounting import annual_totals

        _, _, hs = self.solve(x)
        return annual_totals(hs.ops, 1.0).metrics.j_per_token_facility

    def checked(self, x, solved=None) -> float:
        """:meth:`j_per_token` after ``thermo run``'s checks of the plate's
        solves and of every hour of the hall; raises :class:`SolveError`.
        ``solved``: :meth:`solve`'s ``(plate Solution, hall Params, hall
        Solution)`` at ``x`` when the caller has them (not solved again)."""
        import jax.numpy as jnp

        from aidc_thermo.models.accounting import annual_totals

        ps, hp, hs = jit(self.solve)(jnp.asarray(x, jnp.float64)) if solved is None else solved
        pp = replace(self.plate_params, channel_width=float(x[0]), fin_thickness=float(x[1]))
        try:
            compact.check(self.plate_static, pp, ps)
        except SolveError as e:
            raise SolveError(f"cold plate at channel width {float(x[0]) * 1e3:.4g} mm, fin thickness "
                             f"{float(x[1]) * 1e3:.4g} mm: {e}") from e  # fmt: skip
        facility.check(self.hall_static, hp, hs)
        return float(annual_totals(hs.ops, 1.0).metrics.j_per_token_facility)


def plate_hall_chain(plate: compact.CompactCase, hall: facility.FacilityCase) -> Chain:
    """Join a parsed compact plate case and a parsed facility case whose cold
    plate is a curve table (module docstring). Raises ``ValueError`` when the
    hall has no curve table (parametric plate, or a hall of rack networks), the
    plate case has no curve flows or the coolants differ; the flow range is
    checked by :meth:`Chain.checked`."""
    if hall.rack is not None:
        raise ValueError(f"{hall.name}: a hall of rack networks ([rack]) takes its plates from the rack case; "
                         "plate_hall_chain joins a plate to a hall with [cold_plate] curves or case")  # fmt: skip
    if "table_flow" not in hall.params["cold_plate"]:
        raise ValueError(f"{hall.name}: [cold_plate] is a parametric law; plate_hall_chain replaces a curve table "
                         "([cold_plate] curves = <file> or case = <plate case>)")  # fmt: skip
    if len(plate.curve_flows) < 2:
        raise ValueError(f"{plate.name}: the plate case has no curve flows ([operating] curve_points >= 2)")
    if coolant_label(plate.coolant) != coolant_label(hall.coolant_secondary):
        raise ValueError(f"{plate.name} is cooled by {coolant_label(plate.coolant)!r}, the secondary loop of "
                         f"{hall.name} by {coolant_label(hall.coolant_secondary)!r}: a plate's R(q) and dp(q) "
                         "depend on the coolant")  # fmt: skip
    ps, pp = compact.build(plate, curves=True)
    hs, hp = facility.build(hall)
    x0 = np.array([plate.channel_width, plate.fin_thickness, float(hp.hall.t_supply_set), 1.0], np.float64)
    return Chain(ps, pp, hs, hp, x0)
