"""NVIDIA AIConfigurator 0.12.0 as the peer of `moeplan plan`: its own virtual environment, the command line
that asks it moeplan's default question, and a reader for the answer it prints.

The question (moeplan's `scenarios/deepseek_v3_h200_16.yaml`): DeepSeek-V3, FP8 block-scaled weights as
released, on 16 x H200 SXM (2 nodes x 8), input 4,000 / output 1,000 tokens, TTFT <= 2 s, TPOT <= 50 ms,
aggregated and disaggregated serving both searched. AIConfigurator's spelling of it (flags read from
`aiconfigurator cli default --help` of the 0.12.0 wheel):

    aiconfigurator cli default --model-path deepseek-ai/DeepSeek-V3 --total-gpus 16 --system h200_sxm
        --backend trtllm --serving-mode auto --isl 4000 --osl 1000 --ttft 2000 --tpot 50 --no-color

`--backend trtllm` and `--serving-mode auto` (agg and disagg compared) are its defaults, written out so that
a later default cannot change the question. It reads the model from the config.json it bundles
(`aiconfigurator_core/model_configs/deepseek-ai--DeepSeek-V3_config.json`) and infers FP8 block weights and a
BF16 KV cache from it; MTP is off unless `--nextn` is given (moeplan does not model MTP either). It runs on
CPU (the wheels ship its perf database and a compiled engine; `nvidia-ml-py` is imported, no GPU is used).
`--no-color` only drops ANSI codes so the answer can be read back. Its code is never committed here: the
venv folder is git-ignored.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

AIC_VERSION = "0.12.0"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VENV = ROOT / "benchmarks" / ".venv-aiconfigurator"
QUESTION_ARGS = ("cli", "default", "--model-path", "deepseek-ai/DeepSeek-V3", "--total-gpus", "16",
                 "--system", "h200_sxm", "--backend", "trtllm", "--serving-mode", "auto",
                 "--isl", "4000", "--osl", "1000", "--ttft", "2000", "--tpot", "50", "--no-color")


def executable(venv: Path) -> Path:
    """The `aiconfigurator` console script inside venv."""
    return venv / "bin" / "aiconfigurator"


def installed_version(venv: Path) -> str | None:
    """The aiconfigurator version installed in venv, or None when venv or the package is missing."""
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    out = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('aiconfigurator'))"],
                         capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def ensure_venv(venv: Path = DEFAULT_VENV) -> Path:
    """Create venv and pip-install aiconfigurator==AIC_VERSION into it unless that version is already there;
    return the path of its `aiconfigurator` executable. The install takes about a minute and ~850 MB."""
    if installed_version(venv) == AIC_VERSION:
        return executable(venv)
    if not (venv / "bin" / "python").exists():
        print(f"creating {venv}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    print(f"installing aiconfigurator=={AIC_VERSION} into {venv}", file=sys.stderr)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    f"aiconfigurator=={AIC_VERSION}"], check=True)
    found = installed_version(venv)
    if found != AIC_VERSION:
        raise RuntimeError(f"{venv}: expected aiconfigurator {AIC_VERSION} after install, found {found}")
    return executable(venv)


def command(venv: Path = DEFAULT_VENV) -> list[str]:
    """The argv that asks AIConfigurator the question."""
    return [str(executable(venv)), *QUESTION_ARGS]


@dataclass(frozen=True, kw_only=True)
class AicAnswer:
    """What AIConfigurator answered: its chosen mode and its best configuration of that mode."""

    mode: str
    """'agg' or 'disagg', the experiment it chose."""
    tok_per_s_per_gpu: float
    """Its predicted output tokens/s per GPU of the chosen configuration."""
    layout: str
    """The chosen configuration in its own words (parallel strings, workers, batch sizes)."""
    ttft_s: float | None
    """Its predicted time to first token of that configuration."""
    tpot_s: float | None
    """Its predicted time per output token of that configuration."""


_BEST = re.compile(r"Best Experiment Chosen:\s*(\w+)\s+at\s+([\d,.]+)\s*tokens/s/gpu")
_TTFT = re.compile(r"^\s*- TTFT:\s*([\d,.]+)\s*ms", re.MULTILINE)
_TPOT = re.compile(r"^\s*- TPOT:\s*([\d,.]+)\s*ms", re.MULTILINE)


def _ms_as_s(pattern: re.Pattern[str], text: str) -> float | None:
    m = pattern.search(text)
    return float(m.group(1).replace(",", "")) / 1e3 if m else None


def top_table(stdout: str, mode: str) -> list[dict[str, str]]:
    """The rows of the '<mode> Top Configurations' table AIConfigurator prints, keyed by its column names."""
    lines = stdout.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip().startswith(f"{mode} Top Configurations")), None)
    if start is None:
        return []
    rows = [ln for ln in lines[start + 1:start + 40] if ln.lstrip().startswith("|")]
    if not rows:
        return []
    header = [c.strip() for c in rows[0].strip().strip("|").split("|")]
    body = []
    for ln in rows[1:]:
        cells = [c.strip() for c in ln.strip().strip("|").split("|")]
        if len(cells) == len(header):
            body.append(dict(zip(header, cells, strict=True)))
    return body


def describe(mode: str, row: dict[str, str]) -> str:
    """One line for a top-table row: disagg as prefill and decode workers, agg as replicas of one worker."""
    if mode == "disagg":
        return (f"prefill {row['(p)workers']} x {row['(p)parallel']} (bs {row['(p)bs']}), "
                f"decode {row['(d)workers']} x {row['(d)parallel']} (bs {row['(d)bs']})")
    return f"{row['replicas']} x {row['parallel']} (bs {row['bs']})"


def parse_answer(stdout: str) -> AicAnswer | None:
    """Read the chosen experiment and its rank-1 configuration from AIConfigurator's stdout; None if absent."""
    best = _BEST.search(stdout)
    if best is None:
        return None
    mode = best.group(1)
    rows = top_table(stdout, mode)
    layout = describe(mode, rows[0]) if rows else "(no top table printed)"
    return AicAnswer(mode=mode, tok_per_s_per_gpu=float(best.group(2).replace(",", "")), layout=layout,
                     ttft_s=_ms_as_s(_TTFT, stdout), tpot_s=_ms_as_s(_TPOT, stdout))
