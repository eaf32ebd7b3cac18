"""The only YAML reader: scenario files -> typed specs (model, cluster, workload, optional plan).

Every problem is raised as :class:`ScenarioError` naming the key path, the bad value and what is accepted;
the CLI turns it into exit code 2.  Units are written in the file and parsed here, once.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cost_models.afd import AfdLayout
from cost_models.parallel import ParallelDims
from cost_models.specs import ClusterSpec, Confidence, DeviceSpec, LinkSpec, ModelSpec, Precision, ServingWorkload
from planner.catalog import devices, models
from planner.catalog.errors import ConfigError, UnknownName
from planner.catalog.hf_import import model_from_hf_config
from planner.catalog.sourced import Sourced
from planner.inputs import limits as lim
from planner.inputs import reader, suggest, units
from planner.inputs.deployment_text import DeploymentPlan, aggregated, deployment_from_yaml
from planner.inputs.errors import ScenarioError
from planner.inputs.plan_text import parse_plan
from planner.inputs.precision import PrecisionProblem, PrecisionSection, resolve_precisions

_PRECISIONS = [p.label for p in Precision]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, str_max_length=lim.MAX_TEXT_CHARS)


class ModelSection(_Strict):
    catalog: str | None = None
    """Bundled model id (``moeplan catalog models``)."""
    hf_config: str | None = None
    """Path to a Hugging Face config.json, relative to the scenario file."""
    hf_quant_config: str | None = None
    """Path to a ModelOpt hf_quant_config.json (default: the one beside hf_config, if any)."""
    weight_precision: Literal["bf16", "fp8", "int8", "fp4"] | None = None
    """Weight format of every weight class (fp4 = MXFP4); default: the checkpoint's format per class."""
    precision: PrecisionSection = PrecisionSection()
    """Precision per op class, overriding weight_precision / kv_precision class by class."""
    kv_precision: Literal["bf16", "fp8", "int8"] | None = None
    """KV-cache format; default: the checkpoint's (ModelOpt kv_cache_quant_algo), else bf16."""
    activation_precision: Literal["bf16", "fp8", "int8"] | None = None
    """GEMM activation format; default fp8/int8 when weights are, else bf16."""
    dispatch_precision: Literal["bf16", "fp8", "int8"] | None = None
    """EP dispatch payload; default: the activation precision."""


_Quantity = str | int | float | None
"""A quantity with its unit ('450 GB/s'); a bare number is read only to say which unit it needs."""


class LinkSection(_Strict):
    bandwidth: _Quantity = None
    """Per device per direction, e.g. '450 GB/s' or '400 Gb/s'."""
    latency: _Quantity = None
    achievable_fraction: float | None = Field(default=None, ge=0.01, le=1)
    """Share of the bandwidth a collective reaches: 0.01 .. 1."""


class DeviceOverrides(_Strict):
    hbm_capacity: _Quantity = None
    hbm_bandwidth: _Quantity = None
    peak_bf16: _Quantity = None
    peak_fp8: _Quantity = None
    peak_int8: _Quantity = None
    peak_fp4: _Quantity = None
    compute_units: int | None = Field(default=None, ge=1, le=lim.MAX_COMPUTE_UNITS)


class ClusterSection(_Strict):
    device: str = Field(max_length=lim.MAX_NAME_CHARS)
    nodes: int = Field(ge=1, le=lim.MAX_NODES)
    devices_per_node: int | None = Field(default=None, ge=1, le=lim.MAX_DEVICES_PER_NODE)
    scale_up: LinkSection = LinkSection()
    scale_out: LinkSection = LinkSection()
    device_overrides: DeviceOverrides = DeviceOverrides()


class SloSection(_Strict):
    ttft: _Quantity = None
    tpot: _Quantity = None


class MtpSection(_Strict):
    tokens: int = Field(default=1, ge=0, le=4)
    """Draft tokens per step (k)."""
    acceptance: float | list[float]
    """Conditional acceptance of each draft given the ones before it: one value for every position, or a list
    of k values (draft 1, 2, ...)."""

    @field_validator("acceptance")
    @classmethod
    def _in_unit_interval(cls, v: float | list[float]) -> float | list[float]:
        for a in v if isinstance(v, list) else [v]:
            if not 0.0 <= a <= 1.0:
                raise ValueError(f"acceptance {a} outside [0, 1]")
        return v


class LengthBin(_Strict):
    input: int = Field(ge=1, le=lim.MAX_TOKENS)
    output: int = Field(ge=1, le=lim.MAX_TOKENS)
    share: float = Field(gt=0, le=lim.MAX_SHARE)


class WorkloadSection(_Strict):
    kind: Literal["serving"] = "serving"
    input_tokens: int | None = Field(default=None, ge=1, le=lim.MAX_TOKENS)
    output_tokens: int | None = Field(default=None, ge=1, le=lim.MAX_TOKENS)
    length_mix: list[LengthBin] | None = None
    """Length distribution as weighted bins; means drive throughput, the longest input drives TTFT."""
    concurrency: int | None = Field(default=None, ge=1, le=lim.MAX_CONCURRENCY)
    request_rate: float | None = Field(default=None, gt=0, le=lim.MAX_REQUEST_RATE_PER_S)
    """Requests per second to sustain (for ``plan --objective devices``)."""
    decode_batch_per_device: float | None = Field(default=None, gt=0, le=lim.MAX_DECODE_BATCH_PER_DEVICE)
    prefill_tokens_per_device: int | None = Field(default=None, ge=1, le=lim.MAX_TOKENS)
    decode_context_tokens: int | None = Field(default=None, ge=1, le=lim.MAX_TOKENS)
    expert_imbalance: float = Field(default=1.0, ge=1.0, le=lim.MAX_EXPERT_IMBALANCE)
    expert_load: str | None = None
    """Router-count file (CSV or JSON, rows = MoE layers, columns = experts), relative to the scenario file;
    when given, the imbalance is measured by placing the experts, not taken from expert_imbalance."""
    aligned_prefill: bool = False
    """Aggregated serving: the engine aligns prompt phases across attention-DP ranks."""
    mem_fraction_static: float | None = Field(default=None, ge=0.05, le=0.99)
    """Share of device memory for the engine's static pool (weights + KV cache), as SGLang's
    ``--mem-fraction-static``: the KV cache gets that share less the weights, the rest of the device holds
    activations, EP buffers, CUDA graphs and the runtime. Default: no static pool."""
    slo: SloSection = SloSection()
    mtp: MtpSection | None = None

    @field_validator("length_mix")
    @classmethod
    def _non_empty(cls, v: list[LengthBin] | None) -> list[LengthBin] | None:
        if v is not None and not v:
            raise ValueError("at least one bin")
        return v


class ExpectSection(_Strict):
    metric: str
    value: float
    tolerance: float = Field(gt=0, lt=1)
    source: str


class AfdSection(_Strict):
    """Attention-FFN disaggregation (decode): attention instances and FFN instances (README 'Attention-FFN
    disaggregation'); the whole batch is ``workload.concurrency``."""

    attention_instances: int = Field(ge=1, le=lim.MAX_AFD)
    attention_instance_devices: int = Field(ge=1, le=lim.MAX_AFD)
    attention_tp: int = Field(default=1, ge=1, le=lim.MAX_AFD)
    """Attention TP inside an instance (1 = local DP: every device its own sequences)."""
    ffn_instances: int = Field(ge=1, le=lim.MAX_AFD)
    ffn_instance_devices: int = Field(ge=1, le=lim.MAX_AFD)
    ffn_tp: int = Field(ge=1, le=lim.MAX_AFD)
    """TP degree of every expert inside an FFN instance (the rest of the instance is EP)."""
    micro_batches: int = Field(default=3, ge=1, le=lim.MAX_MICRO_BATCHES)


class ScenarioFile(_Strict):
    name: str = Field(max_length=lim.MAX_NAME_CHARS)
    description: str = ""
    model: ModelSection
    cluster: ClusterSection
    workload: WorkloadSection
    plan: str | None = None
    deployment: str | dict[str, str] | None = None
    afd: AfdSection | None = None
    modes: list[Literal["aggregated", "disaggregated", "afd"]] | None = Field(default=None, min_length=1)
    """Deployment modes ``plan`` searches (``plan --modes`` overrides; default all three)."""
    expect: list[ExpectSection] = []


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """A parsed scenario: typed specs ready for the cost models."""

    name: str
    description: str
    path: str
    model: ModelSpec
    cluster: ClusterSpec
    workload: ServingWorkload
    plan: ParallelDims | None
    """The ``plan:`` (or a one-pool ``deployment:``) as one plan over its pool, ``dp`` = its replicas."""
    expect: tuple[ExpectSection, ...]
    device_sources: dict[str, Any]
    expert_loads: Any = None
    """:class:`planner.inputs.loads.ExpertLoads` from ``workload.expert_load``, or None."""
    afd: AfdLayout | None = None
    """The attention-FFN disaggregated layout of the ``afd:`` section, or None."""
    modes: tuple[str, ...] | None = None
    """The ``modes:`` list (deployment modes ``plan`` searches, in aggregated / disaggregated / afd order), or None."""
    deployment: DeploymentPlan | None = None
    """The ``deployment:`` block (or the ``plan:``, as one pool over the cluster), or None
    (:mod:`planner.inputs.deployment_text`)."""


def _p(label: str | None) -> Precision | None:
    return Precision.from_label(label) if label else None


_UNIT_RANGES: dict[Any, tuple[tuple[float, float], str]] = {
    units.parse_bytes: (lim.BYTES_RANGE, "GB"), units.parse_bandwidth: (lim.BANDWIDTH_RANGE, "GB/s"),
    units.parse_seconds: (lim.LATENCY_RANGE, "ms"), units.parse_flops: (lim.FLOPS_RANGE, "TFLOP/s")}


def _convert(path: str, value: str | float | None, parser: Any, bounds: tuple[float, float] | None = None
             ) -> float | None:
    """``value`` parsed with its unit, checked to lie in ``bounds`` (default: the parser's documented range)."""
    if value is None:
        return None
    default_bounds, unit = _UNIT_RANGES[parser]
    lo, hi = bounds or default_bounds
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ScenarioError(path, value, f"a quantity with a unit, e.g. '{reader.shorten_text(str(value), 20)} "
                            f"{unit}'")
    try:
        si = parser(value)
    except units.UnitError as e:
        raise ScenarioError(path, value, e.accepted) from None
    if lim.out_of_range(si, lo, hi):
        raise ScenarioError(path, value, f"a value in {lim.range_text(lo, hi)} (SI units: {si:g} given)")
    return si


def _link(path: str, base: LinkSpec, sec: LinkSection) -> LinkSpec:
    bw = _convert(f"{path}.bandwidth", sec.bandwidth, units.parse_bandwidth)
    lat = _convert(f"{path}.latency", sec.latency, units.parse_seconds)
    return dataclasses.replace(base, bytes_per_s=bw if bw is not None else base.bytes_per_s,
                               latency_s=lat if lat is not None else base.latency_s,
                               achievable_fraction=sec.achievable_fraction or base.achievable_fraction)


def _device(sec: ClusterSection) -> DeviceSpec:
    try:
        dev = devices.get_device(sec.device)
    except UnknownName as e:
        raise ScenarioError("cluster.device", sec.device, f"a catalog device id; closest: {', '.join(e.suggestions)}"
                            f" (all: moeplan catalog devices)") from None
    o = sec.device_overrides
    peaks = dict(dev.peak_flop_per_s)
    for prec, text in ((Precision.BF16, o.peak_bf16), (Precision.FP8, o.peak_fp8), (Precision.INT8, o.peak_int8),
                       (Precision.FP4, o.peak_fp4)):
        v = _convert(f"cluster.device_overrides.peak_{prec.label}", text, units.parse_flops)
        if v is not None:
            peaks[prec] = v
    cap = _convert("cluster.device_overrides.hbm_capacity", o.hbm_capacity, units.parse_bytes)
    bw = _convert("cluster.device_overrides.hbm_bandwidth", o.hbm_bandwidth, units.parse_bandwidth)
    return dataclasses.replace(
        dev, peak_flop_per_s=peaks, hbm_bytes=cap if cap is not None else dev.hbm_bytes,
        hbm_bytes_per_s=bw if bw is not None else dev.hbm_bytes_per_s,
        compute_units=o.compute_units or dev.compute_units,
        scale_up=_link("cluster.scale_up", dev.scale_up, sec.scale_up),
        scale_out=_link("cluster.scale_out", dev.scale_out, sec.scale_out))


def _model(sec: ModelSection, base_dir: Path) -> ModelSpec:
    if (sec.catalog is None) == (sec.hf_config is None):
        raise ScenarioError("model", {"catalog": sec.catalog, "hf_config": sec.hf_config},
                            "exactly one of model.catalog (a bundled id) or model.hf_config (a config.json path)")
    if sec.catalog is not None:
        try:
            return models.get_model(sec.catalog)
        except UnknownName as e:
            raise ScenarioError("model.catalog", sec.catalog,
                                f"a bundled model id; closest: {', '.join(e.suggestions)} (all: moeplan catalog models)"
                                ) from None
    assert sec.hf_config is not None
    cfg_path = (base_dir / sec.hf_config).resolve()
    cfg = _read_json("model.hf_config", sec.hf_config, cfg_path)
    quant_key, quant_path = "model.hf_quant_config", None
    if sec.hf_quant_config is not None:
        quant_path = (base_dir / sec.hf_quant_config).resolve()
    elif (cfg_path.parent / "hf_quant_config.json").is_file():  # what the engines read beside a config.json
        quant_key, quant_path = f"{cfg_path.parent / 'hf_quant_config.json'}", cfg_path.parent / "hf_quant_config.json"
    quant = None if quant_path is None else _read_json(quant_key, sec.hf_quant_config or quant_key, quant_path)
    try:
        return model_from_hf_config(cfg, id=cfg_path.stem, hf_quant_config=quant)
    except ConfigError as e:
        in_quant = quant is not None and e.key_path.split(".")[0] in ("quantization", "hf_quant_config")
        raise ScenarioError(f"{quant_key if in_quant else 'model.hf_config'} -> {e.key_path}", e.value,
                            e.expected) from None


def _read_json(key: str, given: str, path: Path) -> Any:
    try:
        return reader.load_json(reader.read_text(path))
    except reader.InputFileError as e:
        raise ScenarioError(key, given, e.accepted) from None


def _workload(sec: WorkloadSection, msec: ModelSection, model: ModelSpec, dev: DeviceSpec) -> ServingWorkload:
    if sec.length_mix:
        total = sum(b.share for b in sec.length_mix)
        inp = round(sum(b.input * b.share for b in sec.length_mix) / total)
        out = round(sum(b.output * b.share for b in sec.length_mix) / total)
    elif sec.input_tokens is None or sec.output_tokens is None:
        raise ScenarioError("workload.input_tokens" if sec.input_tokens is None else "workload.output_tokens", None,
                            "a positive integer (or workload.length_mix: a list of {input, output, share})")
    else:
        inp, out = sec.input_tokens, sec.output_tokens
    weight = _p(msec.weight_precision) or model.native_precision
    if weight is Precision.FP4 and not dev.supports(weight) and model.native_precision is not Precision.FP4:
        # 4-bit storage needs FP4 tensor cores unless the checkpoint ships 4-bit (gpt-oss MXFP4 runs on Hopper
        # through weight-only de-quantising kernels, at the BF16 rate)
        raise ScenarioError("model.weight_precision", "fp4",
                            f"a precision {dev.name} supports: {', '.join(p.label for p in dev.peak_flop_per_s)}")
    try:
        prec = resolve_precisions(model, dev, msec.precision, weight_precision=msec.weight_precision,
                                  kv_precision=msec.kv_precision)
    except PrecisionProblem as e:
        raise ScenarioError(e.path, e.value, e.accepted) from None
    act = _p(msec.activation_precision) or (weight if weight in (Precision.FP8, Precision.INT8) else Precision.BF16)
    mtp_pos = ()
    if sec.mtp is not None and isinstance(sec.mtp.acceptance, list):
        if len(sec.mtp.acceptance) != sec.mtp.tokens:
            raise ScenarioError("workload.mtp.acceptance", sec.mtp.acceptance,
                                f"one value, or a list of workload.mtp.tokens = {sec.mtp.tokens} values")
        mtp_pos = tuple(sec.mtp.acceptance)
    mtp_a = sec.mtp.acceptance if sec.mtp is not None and not isinstance(sec.mtp.acceptance, list) else 0.0
    return ServingWorkload(
        input_tokens=inp, output_tokens=out, concurrency=sec.concurrency, request_rate_per_s=sec.request_rate,
        ttft_slo_s=_convert("workload.slo.ttft", sec.slo.ttft, units.parse_seconds, lim.SLO_RANGE),
        tpot_slo_s=_convert("workload.slo.tpot", sec.slo.tpot, units.parse_seconds, lim.SLO_RANGE),
        weight_precision=weight, kv_precision=prec.kv_cache, activation_precision=act, op_precision=prec,
        dispatch_precision=_p(msec.dispatch_precision) or act,
        prefill_tokens_per_device=sec.prefill_tokens_per_device, decode_context_tokens=sec.decode_context_tokens,
        decode_batch_per_device=sec.decode_batch_per_device,
        mtp_tokens=sec.mtp.tokens if sec.mtp else 0, mtp_acceptance=mtp_a, mtp_position_acceptance=mtp_pos,
        expert_imbalance=sec.expert_imbalance, aligned_prefill=sec.aligned_prefill,
        static_memory_fraction=sec.mem_fraction_static)


def _pydantic_error(e: ValidationError, root: Any = None) -> ScenarioError:
    """The first error of ``e`` as a ScenarioError; ``root`` is the file model the location starts at (default
    the serving :class:`ScenarioFile`), for the keys an unknown key is compared with."""
    # a misspelt key also makes its correct spelling "missing": report the misspelling first
    err = sorted(e.errors(), key=lambda x: x["type"] != "extra_forbidden")[0]
    path = ".".join(str(x) if str(x).isprintable() and str(x).split() == [str(x)] else repr(x) for x in err["loc"])
    value = err.get("input")
    if err["type"] == "extra_forbidden":
        return ScenarioError(path, value, suggest.unknown_key(root or ScenarioFile, err["loc"]))
    if err["type"] == "missing":
        return ScenarioError(path, None, "this key is required")
    msg = err["msg"]
    return ScenarioError(path, value, msg.removeprefix("Value error, ") if err["type"] == "value_error" else msg)


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file; raise :class:`ScenarioError` on any problem."""
    p = Path(path)
    try:
        raw = reader.load_yaml(reader.read_text(p))
    except reader.InputFileError as e:
        raise ScenarioError("<file>", str(path), e.accepted) from None
    if not isinstance(raw, dict):
        raise ScenarioError("<top level>", raw, "a mapping with keys name, model, cluster, workload")
    if _is_training(raw):
        raise ScenarioError("workload.kind", "training", "serving (this command reads serving scenarios; plan, "
                            "evaluate and compare also read training ones)")
    try:
        sf = ScenarioFile.model_validate(raw)
    except ValidationError as e:
        raise _pydantic_error(e) from None
    model = _model(sf.model, p.parent)
    cluster, dev, dpn = cluster_of(sf.cluster)
    wl = _workload(sf.workload, sf.model, model, dev)
    plan, deployment = _plan_and_deployment(sf)
    loads = read_expert_loads(sf.workload.expert_load, model, base=p.parent, key="workload.expert_load") \
        if sf.workload.expert_load else None
    afd = _afd(sf, wl)
    return Scenario(name=sf.name, description=sf.description, path=str(p), model=model, cluster=cluster,
                    workload=wl, plan=plan, expect=tuple(sf.expect),
                    device_sources=_effective_sources(sf.cluster, dev, dpn), expert_loads=loads, afd=afd,
                    deployment=deployment,
                    modes=tuple(m for m in ("aggregated", "disaggregated", "afd") if m in sf.modes) if sf.modes else None)


def _plan_and_deployment(sf: ScenarioFile) -> tuple[ParallelDims | None, DeploymentPlan | None]:
    """``plan:`` or ``deployment:`` (not both); the plan is the one pool's, when there is one pool."""
    if sf.plan and sf.deployment is not None:
        raise ScenarioError("deployment", sf.deployment, "either plan: or deployment:, not both")
    if sf.plan:
        plan = parse_plan(sf.plan, key="plan")
        return plan, aggregated(plan)
    if sf.deployment is None:
        return None, None
    dep = deployment_from_yaml(sf.deployment, key="deployment")
    return (dep.pools[0].pool_dims if len(dep.pools) == 1 else None), dep


def cluster_of(sec: ClusterSection) -> tuple[ClusterSpec, DeviceSpec, int]:
    """The cluster of a ``cluster:`` section, its device and devices per node."""
    dev = _device(sec)
    dpn = sec.devices_per_node or dev.devices_per_node
    if sec.nodes * dpn > lim.MAX_DEVICES:
        raise ScenarioError("cluster.nodes", sec.nodes, f"at most {lim.MAX_DEVICES:,} devices in all "
                            f"(nodes x devices_per_node; {dpn} devices per node here)")
    cluster = ClusterSpec(device=dev, num_nodes=sec.nodes, devices_per_node=dpn, scale_up=dev.scale_up,
                          scale_out=dev.scale_out)
    return cluster, dev, dpn


def _is_training(raw: dict[str, Any]) -> bool:
    wl = raw.get("workload")
    return isinstance(wl, dict) and wl.get("kind") == "training"


def is_training_scenario(path: str | Path) -> bool:
    """Whether ``path`` reads as a training scenario (``workload.kind: training``); False for anything else,
    including files that do not read (the serving reader then reports the problem).  Here, beside the serving
    reader, so that a serving command's kind check does not import the training reader."""
    try:
        raw = reader.load_yaml(reader.read_text(Path(path)))
    except reader.InputFileError:
        return False
    return isinstance(raw, dict) and _is_training(raw)


def _afd(sf: ScenarioFile, wl: ServingWorkload) -> AfdLayout | None:
    """The ``afd:`` layout; an AFD scenario names its batch (``workload.concurrency``) and no ``plan:``."""
    if sf.afd is None:
        return None
    if sf.plan is not None:
        raise ScenarioError("plan", sf.plan, "no plan: with an afd: section (the afd: section is the layout)")
    if sf.deployment is not None:
        raise ScenarioError("deployment", sf.deployment, "no deployment: with an afd: section (the afd: section "
                            "is the layout)")
    if wl.concurrency is None:
        raise ScenarioError("workload.concurrency", None,
                            "the sequences in flight over all attention instances (required with afd:)")
    return AfdLayout(**sf.afd.model_dump())


_OVERRIDE_KEYS = {"hbm_bytes": "cluster.device_overrides.hbm_capacity",
                  "hbm_bytes_per_s": "cluster.device_overrides.hbm_bandwidth",
                  "compute_units": "cluster.device_overrides.compute_units",
                  "devices_per_node": "cluster.devices_per_node",
                  **{f"peak_flop_per_s.{p.label}": f"cluster.device_overrides.peak_{p.label}" for p in Precision},
                  **{f"{tier}.{f}": f"cluster.{tier}.{k}" for tier in ("scale_up", "scale_out")
                     for f, k in (("bytes_per_s", "bandwidth"), ("latency_s", "latency"),
                                  ("achievable_fraction", "achievable_fraction"))}}


def _spec_value(dev: DeviceSpec, dpn: int, path: str) -> float | None:
    """The value at a catalog source path (``scale_up.bytes_per_s``, ``peak_flop_per_s.fp8``) in ``dev``."""
    head, _, tail = path.partition(".")
    if head == "devices_per_node":
        return float(dpn)
    if head == "peak_flop_per_s":
        v = dev.peak_flop_per_s.get(Precision.from_label(tail))
        return None if v is None else float(v)
    obj = getattr(dev, head, None)
    return float(getattr(obj, tail)) if tail else (None if obj is None else float(obj))


def _effective_sources(sec: ClusterSection, dev: DeviceSpec, dpn: int) -> dict[str, Any]:
    """The catalog's sources for the device, with every number the scenario overrode replaced by the value
    actually used and the YAML key it came from (so reports show the assumptions behind each number)."""
    out = devices.device_sources(sec.device)
    for path, key in _OVERRIDE_KEYS.items():
        used = _spec_value(dev, dpn, path)
        cat = out.get(path)
        if used is None or (cat is not None and abs(used - cat.value) <= 1e-9 * max(1.0, abs(cat.value))):
            continue
        was = f"catalog {cat.value:.6g} ({cat.source})" if cat is not None else "not in the catalog"
        out[path] = Sourced(used, f"scenario file: {key}", Confidence.ESTIMATED, f"user value; replaces {was}")
    return out


class _ExportDumper(yaml.SafeDumper):
    """Safe dumper that writes the closed choices (``enum.StrEnum``) as their strings, as JSON does."""


_ExportDumper.add_multi_representer(enum.StrEnum, lambda d, v: d.represent_str(str(v)))


def dump_yaml(doc: Any) -> str:
    """YAML text of an export document (kept here: the one module that touches YAML)."""
    return yaml.dump(doc, Dumper=_ExportDumper, sort_keys=False, allow_unicode=True)


def read_expert_loads(path: str, model: ModelSpec, *, base: Path | None = None, key: str = "--expert-load") -> Any:
    """Read a router-count file and check it against the model; ScenarioError names ``key`` on any problem."""
    from planner.inputs.loads import LoadFileError, check_loads, read_loads

    full = (base / path) if base is not None else Path(path)
    try:
        loads = read_loads(full)
    except LoadFileError as e:
        raise ScenarioError(key, path, str(e)) from None
    except OSError as e:
        raise ScenarioError(key, path, f"a readable CSV or JSON file ({e.strerror})") from None
    problem = check_loads(model, loads)
    if problem:
        raise ScenarioError(key, path, problem)
    return loads


model_of = _model
"""The model of a ``model:`` section (also read by training scenarios, planner.inputs.training)."""
effective_sources = _effective_sources
