"""Expert load matrices: how many routed tokens each MoE layer sent to each logical expert.

Two ways in:

* :func:`read_loads` reads a file.
  - CSV: one row per MoE layer, one column per logical expert, numbers only (integers or decimals, >= 0).
    Lines that start with ``#`` are comments (the shipped matrix opens with one naming its source);
    blank lines are skipped. No header row.
  - JSON: either ``{"layers": [[...], [...], ...]}`` (other top-level keys are ignored) or a bare list of
    lists, each inner list one layer, numbers only.
  A file ending in ``.json`` is read as JSON, ``.csv`` / ``.txt`` as CSV; any other name is sniffed (a first
  non-blank character ``{`` or ``[`` means JSON). A bad file raises :class:`LoadFileError`, whose message
  names the file, the place (``line 4, column 17 (layer 3, expert 17)`` or ``layers[2][16]``), the bad value
  and what would be accepted.
* :func:`synth_loads` draws a synthetic matrix whose skew is one documented parameter.

Counts are "token-expert assignments": a token routed to its top-k experts adds 1 to k columns of its layer,
so a row sums to tokens x top_k. They are unitless counts; any consistent scale (counts, tokens/s) works,
because placement quality is judged by ratios of device loads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cost_models.specs import ModelSpec
from planner.inputs.limits import MAX_LOAD_EXPERTS, MAX_LOAD_LAYERS

if TYPE_CHECKING:
    import numpy as np


class LoadFileError(ValueError):
    """A load file that cannot be read: ``str(err)`` is ``<path>: <location>: got <value>, expected <accepted>``."""

    def __init__(self, path: str | Path, location: str, value: Any, accepted: str) -> None:
        self.path = str(path)
        """The file as given."""
        self.location = location
        """Where in the file: ``line 4, column 17 (layer 3, expert 17)``, ``layers[2][16]``, ``file``."""
        self.value = value
        """The offending text or value, as found."""
        self.accepted = accepted
        """What would have been accepted, in words."""
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        super().__init__(f"{self.path}: {location}: got {shown}, expected {accepted}")


MAX_COUNT = 1e15
"""Largest count accepted in one cell (a billion tokens a second for ten days is ~1e15)."""
MAX_LAYERS = MAX_LOAD_LAYERS
MAX_EXPERTS = MAX_LOAD_EXPERTS
_NUMBER = f"a finite number in 0 .. {MAX_COUNT:g} (a token count)"

DEEPSEEK_V3_SAMPLE = Path(__file__).resolve().parents[1] / "catalog" / "expert_loads" / "deepseek_v3_routing_counts.csv"
"""The shipped real matrix: DeepSeek-V3, 58 layers x 256 experts (provenance in the README beside it)."""


@dataclass(frozen=True, kw_only=True)
class ExpertLoads:
    """Routed-token counts, rows = MoE layers, columns = logical experts."""

    tokens: tuple[tuple[float, ...], ...]
    """``tokens[layer][expert]``: token-expert assignments routed to that expert (a count, >= 0)."""
    source: str = ""
    """Where the matrix came from: a file path, or the :func:`synth_loads` arguments."""

    def __post_init__(self) -> None:
        if not self.tokens or not self.tokens[0]:
            raise ValueError("ExpertLoads needs at least one layer and one expert")
        width = len(self.tokens[0])
        for i, row in enumerate(self.tokens):
            if len(row) != width:
                raise ValueError(f"layer {i} has {len(row)} experts, layer 0 has {width}")
            for j, v in enumerate(row):
                if not (math.isfinite(v) and v >= 0):
                    raise ValueError(f"tokens[{i}][{j}] = {v!r}, expected {_NUMBER}")

    @property
    def num_layers(self) -> int:
        return len(self.tokens)

    @property
    def num_experts(self) -> int:
        return len(self.tokens[0])

    def layer_total_tokens(self, layer: int) -> float:
        """Sum of one layer's row (= tokens x top_k for a full routing sample)."""
        return float(sum(self.tokens[layer]))


def read_loads(path: str | Path) -> ExpertLoads:
    """Read a CSV or JSON load matrix (format in the module docstring); raise :class:`LoadFileError` if bad."""
    from planner.inputs import reader
    p = Path(path)
    try:
        text = reader.read_text(p, max_bytes=reader.LOADS_MAX_BYTES)
    except reader.InputFileError as err:
        raise LoadFileError(path, "file", str(p), f"an existing .csv or .json load file; {err.accepted}") from None
    suffix = p.suffix.lower()
    if suffix == ".json" or (suffix not in (".csv", ".txt") and text.lstrip()[:1] in ("{", "[")):
        return parse_json_loads(text, path=path)
    return parse_csv_loads(text, path=path)


def parse_csv_loads(text: str, *, path: str | Path = "<csv>") -> ExpertLoads:
    """CSV text -> loads; ``path`` only labels errors."""
    rows: list[tuple[float, ...]] = []
    first_line = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        cells = line.split(",")
        _check_shape(path, f"line {lineno}", len(rows), len(cells))
        if rows and len(cells) != len(rows[0]):
            raise LoadFileError(path, f"line {lineno} (layer {len(rows)})", f"{len(cells)} columns",
                                f"{len(rows[0])} columns, like line {first_line}")
        values = []
        for col, cell in enumerate(cells, start=1):
            where = f"line {lineno}, column {col} (layer {len(rows)}, expert {col - 1})"
            values.append(_number(cell.strip(), path, where))
        if not rows:
            first_line = lineno
        rows.append(tuple(values))
    if not rows:
        raise LoadFileError(path, "file", "no data rows", "one row of comma-separated counts per MoE layer")
    return ExpertLoads(tokens=tuple(rows), source=str(path))


def parse_json_loads(text: str, *, path: str | Path = "<json>") -> ExpertLoads:
    """JSON text -> loads; ``path`` only labels errors."""
    from planner.inputs import reader
    try:
        doc = reader.load_json(text)
    except reader.InputFileError as err:
        if err.found:
            raise LoadFileError(path, err.where, err.found, "valid JSON") from None
        raise LoadFileError(path, err.where, "JSON", err.accepted) from None
    accepted = '{"layers": [[count, ...], ...]} or a bare list of lists of counts'
    prefix = "layers"
    if isinstance(doc, dict):
        if "layers" not in doc:
            raise LoadFileError(path, "top level", sorted(doc)[:5], accepted)
        doc = doc["layers"]
    else:
        prefix = "$"
    if not isinstance(doc, list) or not doc:
        raise LoadFileError(path, prefix, doc, "a non-empty list of layers")
    rows: list[tuple[float, ...]] = []
    for i, layer in enumerate(doc):
        _check_shape(path, f"{prefix}[{i}]", i, len(layer) if isinstance(layer, list) else 1)
        if not isinstance(layer, list) or not layer:
            raise LoadFileError(path, f"{prefix}[{i}]", layer, "a non-empty list of counts, one per expert")
        if rows and len(layer) != len(rows[0]):
            raise LoadFileError(path, f"{prefix}[{i}]", f"{len(layer)} experts",
                                f"{len(rows[0])} experts, like {prefix}[0]")
        rows.append(tuple(_json_number(v, path, f"{prefix}[{i}][{j}]") for j, v in enumerate(layer)))
    return ExpertLoads(tokens=tuple(rows), source=str(path))


def _check_shape(path: str | Path, where: str, layer: int, experts: int) -> None:
    """Refuse row ``layer`` (0-based) past :data:`MAX_LAYERS` or with more than :data:`MAX_EXPERTS` columns."""
    if layer >= MAX_LAYERS:
        raise LoadFileError(path, where, f"layer {layer}", f"at most {MAX_LAYERS:,} layers (rows)")
    if experts > MAX_EXPERTS:
        raise LoadFileError(path, where, f"{experts} experts", f"at most {MAX_EXPERTS:,} experts (columns)")


def _number(cell: str, path: str | Path, where: str) -> float:
    try:
        value = float(cell) if len(cell) <= 40 else math.nan
    except ValueError:
        raise LoadFileError(path, where, cell, _NUMBER) from None
    if not (math.isfinite(value) and 0 <= value <= MAX_COUNT):
        raise LoadFileError(path, where, cell, _NUMBER)
    return value


def _json_number(value: Any, path: str | Path, where: str) -> float:
    # bool is an int subclass in Python; true/false are not counts
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LoadFileError(path, where, value, _NUMBER)
    if not (0 <= value <= MAX_COUNT and math.isfinite(value)):
        raise LoadFileError(path, where, value, _NUMBER)
    return float(value)


def loads_to_json(loads: ExpertLoads) -> dict[str, Any]:
    """The JSON form :func:`parse_json_loads` reads back (integers stay integers)."""
    return {"source": loads.source,
            "layers": [[int(v) if float(v).is_integer() else v for v in row] for row in loads.tokens]}


HOT_BOOST_SIGMAS = 2.0
"""Extra log-popularity of a layer's hot experts, in standard deviations of the log-normal (times ``skew``)."""


def check_loads(model: ModelSpec, loads: ExpertLoads) -> str | None:
    """A message when the load file does not match the model, else None."""
    if model.moe is None:
        return f"{model.id} is dense: an expert-load file does not apply"
    if loads.num_experts != model.moe.num_routed_experts:
        return (f"the file has {loads.num_experts} experts per layer; {model.id} has "
                f"{model.moe.num_routed_experts}")
    if loads.num_layers > model.num_moe_layers:
        return (f"the file has {loads.num_layers} layers (rows); {model.id} has {model.num_moe_layers} MoE layers "
                "(at most that many rows)")
    return None


def loads_to_csv(loads: ExpertLoads) -> str:
    """Rows = MoE layers, columns = experts, with a leading ``#`` provenance line (the format read_loads takes)."""
    lines = [f"# {loads.source or 'moeplan'}"]
    for row in loads.tokens:
        lines.append(",".join(f"{v:g}" for v in row))
    return "\n".join(lines) + "\n"


def synth_loads(experts: int = 256, layers: int = 58, top_k: int = 8, skew: float = 1.0, seed: int = 0,
                tokens: int = 20_267, hot_experts: int | None = None) -> ExpertLoads:
    """Draw a realistic load matrix: log-normal expert popularity of width ``skew`` plus a few hot experts.

    The model, per layer independently (so each layer has its own popular experts, as routers do):

    1. log-popularity ``a_e = skew * (z_e + HOT_BOOST_SIGMAS * hot_e)``, ``z_e ~ N(0, 1)``; ``hot_e`` is 1 for
       ``hot_experts`` experts picked uniformly at random (default ``max(1, experts // 64)``), else 0;
       popularity ``p = softmax(a)``. ``skew`` is the standard deviation of the log-normal:
       0 = every expert equally popular; 1 ~ the top expert 10-30x the mean; 2 ~ the hottest experts are
       picked by nearly every token (the shipped DeepSeek-V3 sample looks like skew 1.5-2 in its deep layers).
    2. A token routes to ``top_k`` distinct experts, so the chance that it picks expert e is
       ``q_e = min(1, lam * p_e)`` with ``lam`` set so that ``sum(q) = top_k`` (water-filling on the cap 1).
    3. ``count_e ~ Binomial(tokens, q_e)``, the exact marginal of top-k routing over ``tokens`` tokens; a
       count never exceeds ``tokens`` and a row sums to ``tokens * top_k`` in expectation.

    Deterministic for a given ``seed`` (numpy PCG64).
    """
    if experts < 1 or layers < 1 or tokens < 1:
        raise ValueError(f"experts, layers and tokens must be >= 1, got {experts}, {layers}, {tokens}")
    if not 1 <= top_k <= experts:
        raise ValueError(f"top_k must be in [1, experts={experts}], got {top_k}")
    if not (math.isfinite(skew) and skew >= 0):
        raise ValueError(f"skew must be a finite number >= 0, got {skew}")
    hot = max(1, experts // 64) if hot_experts is None else hot_experts
    if not 0 <= hot <= experts:
        raise ValueError(f"hot_experts must be in [0, experts={experts}], got {hot_experts}")
    import numpy as np  # here, not at module level: reading a scenario (every plan / evaluate) needs no numpy
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(layers):
        z = rng.standard_normal(experts)
        z[rng.choice(experts, size=hot, replace=False)] += HOT_BOOST_SIGMAS
        a = skew * z
        p = np.exp(a - a.max())
        q = _capped_probabilities(p / p.sum(), top_k)
        rows.append(tuple(float(c) for c in rng.binomial(tokens, q)))
    source = f"synth_loads(experts={experts}, layers={layers}, top_k={top_k}, skew={skew}, seed={seed}, " \
             f"tokens={tokens}, hot_experts={hot})"
    return ExpertLoads(tokens=tuple(rows), source=source)


def _capped_probabilities(p: np.ndarray, top_k: int) -> np.ndarray:
    """``q = min(1, lam * p)`` with ``sum(q) = top_k``: raise lam, capping experts that reach 1, until it sums."""
    import numpy as np
    q = np.zeros_like(p)
    capped = np.zeros(p.shape, dtype=bool)
    for _ in range(len(p)):
        free_mass = p[~capped].sum()
        lam = (top_k - capped.sum()) / free_mass if free_mass > 0 else 0.0
        q = np.where(capped, 1.0, lam * p)
        over = (q > 1.0) & ~capped
        if not over.any():
            break
        capped |= over
    return np.minimum(q, 1.0)
