"""Check emitted TensorRT-LLM / MindIE launch lines against the engine's published config schema, copied into
tests/data/engine_schemas/ with its source (repo@commit or documentation page). A schema entry is ``int``,
``float``, ``bool``, ``str``, ``dict``, ``object`` (not looked into), ``flag`` (a command-line switch), a list of
the accepted values, ``list[int]``, ``dict[int,list[int]]``, ``list[host:port]``, or the name of a nested class
of the schema (MindIE also ``uint``, ``port``, ``list[list[uint]]``, ``list[<class>]``). Returns the problems found, one string each (empty: the lines conform)."""

from __future__ import annotations

import json
from pathlib import Path

SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "engine_schemas"


def schema(engine: str) -> dict:
    return json.loads((SCHEMAS / f"{engine}.json").read_text())


def _int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def value_problem(kind: object, v: object, classes: dict, path: str) -> list[str]:
    """Problems of one value ``v`` at key ``path`` against schema entry ``kind``."""
    simple = {"int": _int, "float": lambda x: _int(x) or isinstance(x, float), "bool": lambda x: isinstance(x, bool),
              "str": lambda x: isinstance(x, str), "dict": lambda x: isinstance(x, dict), "object": lambda x: True,
              "list[int]": lambda x: isinstance(x, list) and all(map(_int, x)),
              "dict[int,list[int]]": lambda x: isinstance(x, dict) and all(
                  _int(k) and isinstance(w, list) and all(map(_int, w)) for k, w in x.items()),
              "list[host:port]": lambda x: isinstance(x, list) and all(
                  isinstance(u, str) and u.count(":") == 1 and u.split(":")[1].isdigit() for u in x)}
    if isinstance(kind, list):
        return [] if v in kind else [f"{path}: got {v!r}; accepted: {kind}"]
    if kind in classes:
        return mapping_problems(v, classes[kind], classes, path)
    inner = kind[5:-1] if isinstance(kind, str) and kind.startswith("list[") else ""
    if inner in classes:
        if not isinstance(v, list):
            return [f"{path}: got {v!r}; accepted: a list of {inner}"]
        return [p for i, x in enumerate(v) for p in mapping_problems(x, classes[inner], classes, f"{path}[{i}]")]
    extra = _kinds(kind, v)
    if extra is not None:
        return [] if extra else [f"{path}: got {v!r}; accepted: {kind}"]
    if kind not in simple:
        raise KeyError(f"schema kind {kind!r} at {path}")
    return [] if simple[kind](v) else [f"{path}: got {v!r}; accepted: {kind}"]


def mapping_problems(obj: object, fields: dict, classes: dict, path: str = "") -> list[str]:
    """Every key of ``obj`` is a field of ``fields`` (extra keys are forbidden) with a value of its kind."""
    if not isinstance(obj, dict):
        return [f"{path or '.'}: got {obj!r}; accepted: a mapping"]
    out: list[str] = []
    for k, v in obj.items():
        key = f"{path}.{k}" if path else str(k)
        if k not in fields:
            out.append(f"{key}: not a field (accepted: {', '.join(sorted(fields))})")
        else:
            out += value_problem(fields[k], v, classes, key)
    return out


def flag_problems(args: list[str], flags: dict, positionals: int = 0) -> list[str]:
    """``args``: the tokens after the command name (``positionals`` leading arguments, then options)."""
    out: list[str] = []
    i = positionals
    while i < len(args):
        name, _, inline = args[i].partition("=")
        if name not in flags:
            out.append(f"{name}: not an option (accepted: {', '.join(sorted(flags))})")
            i += 1
            continue
        kind = flags[name]
        if kind == "flag":
            i += 1
            continue
        if inline:
            raw, i = inline, i + 1
        elif i + 1 < len(args):
            raw, i = args[i + 1], i + 2
        else:
            out.append(f"{name}: needs a value")
            break
        out += _raw_problem(kind, raw, name)
    return out


def _raw_problem(kind: object, raw: str, name: str) -> list[str]:
    if isinstance(kind, list):
        return [] if raw in kind else [f"{name}: got {raw!r}; accepted: {kind}"]
    try:
        {"int": int, "float": float, "str": str}[kind](raw)  # type: ignore[index]
    except ValueError:
        return [f"{name}: got {raw!r}; accepted: {kind}"]
    return []


def _kinds(kind: str, v: object) -> bool | None:
    """The extra kinds of the MindIE schema (None: not one of them)."""
    if kind == "uint":
        return _int(v) and v >= 0  # type: ignore[operator]
    if kind == "port":
        return _int(v) and 1024 <= v <= 65535  # type: ignore[operator]
    if kind == "list[list[uint]]":
        return isinstance(v, list) and all(isinstance(r, list) and all(_int(x) and x >= 0 for x in r) for r in v)
    return None


def trtllm_problems(command: dict, sch: dict) -> list[str]:
    """A TensorRT-LLM command: ``trtllm-serve`` / ``trtllm-serve disaggregated`` options and the YAML files."""
    from planner.inputs.reader import load_yaml
    argv, out = list(command["argv"]), []
    if "trtllm-serve" in argv:
        rest = argv[argv.index("trtllm-serve") + 1:]
        if rest[:1] == ["disaggregated"]:
            out += flag_problems(rest[1:], sch["disaggregated_flags"])
        else:
            out += flag_problems(rest, sch["serve_flags"], positionals=1)
    classes = sch["classes"]
    for name, text in command["files"].items():
        doc = load_yaml(text)
        if name == "disagg_config.yaml":
            out += _disagg_problems(doc, sch["disagg_config"], classes)
        else:
            out += [f"{name}: {p}" for p in mapping_problems(doc, classes["TorchLlmArgs"], classes)]
    return out


def _disagg_problems(doc: dict, cfg: dict, classes: dict) -> list[str]:
    llm = classes["TorchLlmArgs"]
    out: list[str] = []
    for k, v in doc.items():
        kind = cfg["top"].get(k)
        if kind == "servers":
            out += mapping_problems(v, {**llm, **cfg["servers"]}, classes, f"disagg_config.yaml: {k}")
        elif kind is not None:
            out += value_problem(kind, v, classes, f"disagg_config.yaml: {k}")
        elif k in llm:  # an LLM argument inherited by both server sections
            out += value_problem(llm[k], v, classes, f"disagg_config.yaml: {k}")
        else:
            out.append(f"disagg_config.yaml: {k}: neither a disaggregated-server key nor an LLM argument")
    return out


def mindie_problems(command: dict, sch: dict) -> list[str]:
    """A MindIE command: every config.json fragment against the parameter tables, then the documented rules
    between keys (``sch["rules"]``)."""
    import fnmatch
    out: list[str] = []
    classes = sch["classes"]
    for name, text in command["files"].items():
        doc = json.loads(text)
        kind = next(k for pattern, k in sch["files"].items() if fnmatch.fnmatch(name, pattern))
        found = mapping_problems(doc, classes[kind], classes)
        out += [f"{name}: {p}" for p in found]
        if not found:
            rules = {"Config": _mindie_rules, "ExpertMap": _expert_map_rules}.get(kind, lambda _: [])
            out += [f"{name}: {p}" for p in rules(doc)]
    return out


def _expert_map_rules(doc: dict) -> list[str]:
    layers = doc["layer_list"]
    out = [] if len(layers) == doc["moe_layer_count"] else [
        f"moe_layer_count={doc['moe_layer_count']} but {len(layers)} layers listed"]
    sizes = {len(dev["device_expert"]) for layer in layers for dev in layer["device_list"]}
    if len(sizes) > 1:
        out.append(f"devices hold different expert counts {sorted(sizes)}")
    for i, layer in enumerate(layers):
        ids = [dev["device_id"] for dev in layer["device_list"]]
        if layer["layer_id"] != i or ids != list(range(layer["device_count"])):
            out.append(f"layer {i}: layer_id {layer['layer_id']}, device ids {ids[:4]}...")
    return out


def _mindie_rules(doc: dict) -> list[str]:
    backend = doc.get("BackendConfig", {})
    deploy, sched = backend.get("ModelDeployConfig", {}), backend.get("ScheduleConfig", {})
    out: list[str] = []
    for m in deploy.get("ModelConfig", []):
        tp, dp, world = m.get("tp", m.get("worldSize")), m.get("dp", -1), m.get("worldSize")
        if world is not None and tp * (1 if dp == -1 else dp) != world:
            out.append(f"tp={tp} x dp={dp} != worldSize={world}")
        mem = m.get("npuMemSize", -1)
        if not (mem == -1 or 0 < mem <= 2147483647):
            out.append(f"npuMemSize={mem}: accepted -1 or (0, 2147483647]")
        ids = backend.get("npuDeviceIds")
        if world is not None and ids and not backend.get("multiNodesInferEnabled") and len(ids[0]) != world:
            out.append(f"worldSize={world} but npuDeviceIds lists {len(ids[0])} NPUs")
    seq, inp = deploy.get("maxSeqLen"), deploy.get("maxInputTokenLen")
    if inp is not None and not 1 <= inp <= 4194304:
        out.append(f"maxInputTokenLen={inp}: accepted [1, 4194304]")
    if inp is not None and sched.get("maxPrefillTokens", inp) < inp:
        out.append(f"maxPrefillTokens={sched['maxPrefillTokens']} < maxInputTokenLen={inp}")
    if seq is not None and not 1 <= sched.get("maxIterTimes", 1) <= seq:
        out.append(f"maxIterTimes={sched['maxIterTimes']}: accepted [1, maxSeqLen={seq}]")
    if not 1 <= sched.get("maxBatchSize", 1) <= 819200:
        out.append(f"maxBatchSize={sched['maxBatchSize']}: accepted [1, 819200]")
    return out
