"""The real-GPU tier (`hook/gpu/test_hook_gpu.sh`, `./just test-hook-gpu`) runs only on a lent
GPU machine, rarely: these checks keep it from rotting in between, on a CPU. The script parses
(``bash -n``); every embedded Python heredoc compiles; every repository name it imports exists,
and so does every method it calls on a repository class it makes or gets back (``NvmlMig().create``,
``plan(...).resources``); the heredocs run by the system ``python3`` (no .venv there) import the
repository's modules with the standard library alone; every ``$repo/...`` path it names exists;
every ``gpu_bench`` mode it runs is one the bench has; ``gpu_bench.c`` compiles against the CUDA
12 headers ``./just build-hook`` fetches, and its PTX modules assemble (NVIDIA's ptxas, fetched
by the same recipe) for every GPU generation from its target to Blackwell, as the driver's JIT
would have them on the lent machine."""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
import shutil
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIER = ROOT / "hook" / "gpu"
SCRIPT = TIER / "test_hook_gpu.sh"
BENCH = TIER / "gpu_bench.c"
# `<<'PY'` heredocs: the line that opens one (how it runs), its body.
HEREDOC = re.compile(r"^(?P<head>[^\n]*<<'PY'[^\n]*)\n(?P<body>.*?)\nPY$", re.M | re.S)


def _heredocs(script: str) -> list[tuple[str, str]]:
    return [(m["head"], m["body"]) for m in HEREDOC.finditer(script)]


def _returned_classes(fn: object) -> list[type]:
    """The repository classes a function says it returns (``X``, ``X | None``)."""
    try:
        hint = typing.get_type_hints(fn).get("return")
    except (NameError, TypeError):
        return []
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    return [c for c in options if inspect.isclass(c) and c.__module__.startswith("hami_")]


def _name_problems(body: str) -> list[str]:
    """Repository names the heredoc imports that do not exist, and attributes it uses on a
    repository module or on a repository class's instance (made by calling the class, or
    returned by a repository function) that the class does not have."""
    out: list[str] = []
    known: dict[str, object] = {}  # local name -> repository module, class or function
    tree = ast.parse(body)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hami_"):
            module = importlib.import_module(str(node.module))
            for alias in node.names:
                if not hasattr(module, alias.name):
                    out.append(f"{node.module}.{alias.name} does not exist")
                else:
                    known[alias.asname or alias.name] = getattr(module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("hami_"):
                    known[alias.asname or alias.name] = importlib.import_module(alias.name)
    instances: dict[str, list[type]] = {}  # local name -> the classes its value may have
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
            continue
        func = node.value.func
        made = known.get(func.id) if isinstance(func, ast.Name) else None
        classes = [made] if inspect.isclass(made) else _returned_classes(made) if made else []
        for target in node.targets:
            if isinstance(target, ast.Name) and classes:
                instances[target.id] = [c for c in classes if isinstance(c, type)]
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
            continue
        name, attr = node.value.id, node.attr
        if isinstance(known.get(name), types.ModuleType) and not hasattr(known[name], attr):
            out.append(f"{name}.{attr} does not exist")
        for cls in instances.get(name, []):
            fields = getattr(cls, "__dataclass_fields__", {})
            if not hasattr(cls, attr) and attr not in fields:
                out.append(f"{cls.__module__}.{cls.__name__}.{attr} ({name}.{attr}) does not exist")
    return out


def _stdlib_problems(head: str, body: str) -> list[str]:
    """A heredoc run by the system python3 (not the repository's .venv) may import repository
    modules only from the source folders the script puts on its path, with nothing beyond the
    standard library: checked in a fresh interpreter without site-packages."""
    if head.lstrip().startswith('"$py"'):
        return []
    named = []
    for n in ast.walk(ast.parse(body)):
        if isinstance(n, ast.ImportFrom):
            named.append(str(n.module))
        elif isinstance(n, ast.Import):
            named += [a.name for a in n.names]
    modules = sorted({m for m in named if m.startswith("hami_")})
    if not modules:
        return []
    paths = [str(ROOT / p) for p in ("common/src", "plugin-nvidia/src")]
    code = f"import sys; sys.path[:0] = {paths!r}\n" + "".join(f"import {m}\n" for m in modules)
    run = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         timeout=60, check=False)  # fmt: skip
    if run.returncode:
        return [f"{modules} need more than the standard library: {run.stderr.strip()[-300:]}"]
    return []


def problems(script: str) -> list[str]:
    """Everything wrong with the tier script's Python, paths and bench modes."""
    out: list[str] = []
    docs = _heredocs(script)
    if len(docs) < 6:  # torch x2, context, oversubscription, region reader, MIG, MPS
        out.append(f"found {len(docs)} python heredocs, expected at least 6")
    for i, (head, body) in enumerate(docs):
        try:
            compile(body, f"heredoc {i} ({head.strip()})", "exec")
        except SyntaxError as exc:
            out.append(f"heredoc {i}: {exc}")
            continue
        out += [f"heredoc {i}: {p}" for p in _name_problems(body) + _stdlib_problems(head, body)]
    for rel in sorted(set(re.findall(r"\$repo/([\w./-]+)", script))):
        if not (ROOT / rel).exists():
            out.append(f"$repo/{rel} does not exist")
    bench = BENCH.read_text()
    for mode in sorted(set(re.findall(r'gpu_bench" (\w+)', script))):
        if f'!strcmp(argv[1], "{mode}")' not in bench:
            out.append(f"gpu_bench has no mode {mode}")
    return out


def test_script_parses() -> None:
    run = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr


NVIDIA_SMI = """#!/bin/sh
case "$*" in
  *query-gpu=name*) echo "NVIDIA H100 80GB HBM3" ;;
  *query-gpu=memory.total,memory.used*) echo "3000, 0" ;;
  *query-gpu=memory.total*) echo 81559 ;;
  *mig.mode.current*) echo Disabled ;;
  *query-gpu=uuid*) echo GPU-00000000-0000-0000-0000-000000000000 ;;
esac
"""


@pytest.mark.parametrize("hangs", [False, True])
def test_script_runs_to_the_end_without_a_gpu(tmp_path: Path, hangs: bool) -> None:
    """On a machine without a working driver or PyTorch (an nvidia-smi that answers, no
    libcuda.so.1, torch unimportable) every part still reports, fails closed and the run ends
    with gpu_tier_ok=0: no part stops the script (set -eu) before the later ones had their say.
    ``hangs``: every run under ``timeout`` times out; the first oversubscription route that does
    ends that part (the tier must stay one short call)."""
    bin_dir, shadow = tmp_path / "bin", tmp_path / "shadow"
    bin_dir.mkdir()
    shadow.mkdir()
    (bin_dir / "nvidia-smi").write_text(NVIDIA_SMI)
    (bin_dir / "nvidia-smi").chmod(0o755)
    if hangs:
        (bin_dir / "timeout").write_text("#!/bin/sh\nexit 124\n")
        (bin_dir / "timeout").chmod(0o755)
    (shadow / "torch.py").write_text("raise ImportError('no PyTorch on this machine')\n")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(shadow)}
    headers = _cache() / "hook-headers"
    run = subprocess.run(["bash", str(SCRIPT), str(tmp_path), str(headers)], env=env,
                         capture_output=True, text=True, timeout=100, check=False)  # fmt: skip
    lines = run.stdout.splitlines()
    assert run.returncode == 1, run.stdout + run.stderr
    assert not [line for line in lines if line.startswith("gpu_tier_aborted_at_line=")], lines
    assert lines[-1] == "gpu_tier_ok=0", lines
    for want in ["gpu_name=NVIDIA_H100_80GB_HBM3", "gpu_torch=no-torch-cuda",
                 "gpu_sm_limit_error_pts=nan", "gpu_launch_limited_overhead_pct=nan",
                 *(f"gpu_oversubscribe_{r}_ok=0" for r in ("alloc", "pitch", "async", "pool",
                                                           "vmm")),
                 "gpu_mig=not-enabled", "gpu_mps=no-torch"]:  # fmt: skip
        assert want in lines, (want, lines)
    timed = [line for line in lines if line.endswith("timed-out")]
    if hangs:
        assert timed == ["gpu_oversubscribe_alloc=timed-out",
                         *(f"gpu_oversubscribe_{r}=skipped-after-alloc-timed-out"
                           for r in ("pitch", "async", "pool", "vmm"))]  # fmt: skip
    else:
        assert timed == []


def test_python_paths_and_modes_hold() -> None:
    assert problems(SCRIPT.read_text()) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("import profile_table", "import profile_tables", "profile_tables does not exist"),
        ("mig.destroy(uuid", "mig.destroy_instance(uuid", "NvmlMig.destroy_instance"),
        ("mixed.resources(", "mixed.resource_list(", "StaticMig.resource_list"),
        ("daemons.stop_all()", "daemons.stop()", "MpsDaemons.stop (daemons.stop)"),
        ('"$repo/common/src"', '"$repo/common/source"', "$repo/common/source does not exist"),
        ('gpu_bench" oversub', 'gpu_bench" spill', "gpu_bench has no mode spill"),
        ("import MpsDaemons, MpsError", "import MpsDaemons, NvmlMig, MpsError", "mps.NvmlMig"),
        # the MPS part runs on the system python3: the NVML adapter needs nvidia-ml-py
        (
            "from hami_plugin_nvidia.mps import",
            "import hami_plugin_nvidia.nvml\nfrom hami_plugin_nvidia.mps import",
            "more than the standard library",
        ),
        ("finally:\n    mig.destroy", "finally\n    mig.destroy", "expected ':'"),
    ],
)
def test_a_drifted_script_is_caught(old: str, new: str, expected: str) -> None:
    """Renames in the repository (here, in a copy of the script) fail the check."""
    script = SCRIPT.read_text()
    assert old in script
    found = problems(script.replace(old, new, 1))
    assert any(expected in p for p in found), found


def _cache() -> Path:
    return Path(os.environ.get("HAMI_CACHE") or Path.home() / ".cache" / "hami")


# `static const char NAME[] = "..." "..." ...;` (comments between the pieces allowed)
C_STRING = re.compile(r'static const char (\w+)\[\] =\s*((?:"(?:[^"\\]|\\.)*"\s*)+);')


def ptx_modules(source: str) -> dict[str, str]:
    """The PTX text of each string constant that holds a module (``.version`` first)."""
    out = {}
    for name, pieces in C_STRING.findall(source):
        text = "".join(ast.literal_eval(p) for p in re.findall(r'"(?:[^"\\]|\\.)*"', pieces))
        if text.startswith(".version"):
            out[name] = text
    return out


def test_bench_ptx_assembles_for_every_generation(tmp_path: Path) -> None:
    ptxas = _cache() / "ptxas" / "ptxas"
    assert ptxas.is_file(), f"no ptxas at {ptxas}: ./just build-hook fetches it"
    source = BENCH.read_text()
    modules = ptx_modules(source)
    loaded = set(re.findall(r"cuModuleLoadData\(&\w+, (\w+)\)", source))
    assert loaded, "gpu_bench.c loads no PTX module"
    assert loaded <= set(modules), (loaded, sorted(modules))
    for name in sorted(loaded):
        path = tmp_path / f"{name}.ptx"
        path.write_text(modules[name])
        for arch in ("sm_75", "sm_80", "sm_90", "sm_100"):  # its target, A100, H100/H200, B200
            argv = [str(ptxas), f"-arch={arch}", str(path), "-o", os.devnull]
            run = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
            assert run.returncode == 0, f"{name} for {arch}: {run.stderr}"


def test_bench_compiles_against_cuda12_headers(tmp_path: Path) -> None:
    headers = _cache() / "hook-headers" / "cuda12"
    assert (headers / "cuda.h").is_file(), f"no CUDA 12 headers at {headers}: ./just build-hook"
    cc = shutil.which(os.environ.get("CC", "gcc"))
    assert cc, "no C compiler (gcc, or $CC)"
    run = subprocess.run(
        [cc, "-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-Wno-missing-field-initializers",
         f"-I{headers}", "-o", str(tmp_path / "gpu_bench"), str(BENCH), "-ldl"],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
