"""The checks on the code itself: it compiles, its imports install, its names are defined.

Pure: they read the generated script, the cell's scan and the kernel's variables.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfjobs_magic.cell.names import IPYTHON_NAMES
from hfjobs_magic.checks.base import FAIL, OK, SKIP, WARN, CheckResult, Facts, result
from hfjobs_magic.checks.targets import Verdict, worst

if TYPE_CHECKING:
    from hfjobs_magic.cell.carry import Carry
    from hfjobs_magic.cell.script import JobScript


def check_script(f: Facts) -> CheckResult:
    """The generated script compiles, holds no IPython-only syntax, and reads no local file."""
    ctx = f.ctx
    if ctx.script is None:
        return _unbuilt_script(ctx.build_error or "")
    try:
        compile(ctx.script.text, "<job script>", "exec")
    except SyntaxError as err:
        return CheckResult("script", FAIL, f"the generated script does not compile: line {err.lineno}: {err.msg}",
                           "Simplify the cell's IPython syntax, and report this case.")
    if ctx.script.ipython_only:
        return CheckResult("script", FAIL, "; ".join(ctx.script.ipython_only),
                           "Replace IPython syntax (%magics, !cmd with $variables) with plain Python, "
                           "e.g. subprocess.run([...], check=True).")
    if local := _local_reads(f):
        return CheckResult("script", WARN, f"the cell reads {local}, which exist beside the notebook but not in "
                           "the job", "Upload them to a dataset repo and download them in the cell "
                           "(huggingface_hub.hf_hub_download or load_dataset), or read them from a URL.")
    shell = f"; {len(ctx.script.shell_commands)} !command(s) run with subprocess" if ctx.script.shell_commands else ""
    return CheckResult("script", OK, f"the cell compiles as a plain Python script{shell}")


def _unbuilt_script(error: str) -> CheckResult:
    if error.startswith("--vars"):
        return CheckResult("script", WARN, "not checked: --vars could not be sent (see variables)", "")
    return CheckResult("script", FAIL, f"the cell cannot become a script: {error}",
                       "Fix the cell (plain Python, plus !cmd lines), then run it again.")


def _local_reads(f: Facts) -> str:
    """Relative paths the cell reads that exist beside the notebook: the job will not have them."""
    local = [r for r in f.scan.file_reads if (f.ctx.notebook_dir / r.text).exists()]
    return ", ".join(f"{r.text} (line {f.line(r.line)})" for r in local[:4])


def check_dependencies(f: Facts) -> CheckResult:
    """Every third-party import resolves to a distribution the job will install."""
    script = f.ctx.script
    if script is None:
        return CheckResult("dependencies", WARN, "not checked: the cell could not become a script",
                           "Fix the script check first.")
    local = [m for m in f.scan.imports if _is_local_module(f.ctx.notebook_dir, m)]
    unresolved = [m for m in script.unresolved_imports if m not in local]
    problems = []
    if local:
        problems.append(Verdict(WARN, f"imports {', '.join(local)}, found beside the notebook, which the job will "
                                "not have", "Paste that code into the cell, or publish it and add --with PACKAGE."))
    if unresolved:
        withs = " ".join(f"--with {m.replace('_', '-').lower()}" for m in unresolved)
        problems.append(Verdict(WARN, f"no distribution known for import {', '.join(unresolved)}",
                                f"Add {withs} (the name on PyPI, if it differs from the import name)."))
    if problems:
        return result("dependencies", worst(problems))
    deps = script.dependencies
    listed = ", ".join(deps[:6]) + (f" and {len(deps) - 6} more" if len(deps) > 6 else "")
    return CheckResult("dependencies", OK, f"the job installs {listed}" if deps else "no third-party imports")


def _is_local_module(folder: Path, name: str) -> bool:
    return (folder / f"{name}.py").is_file() or (folder / name / "__init__.py").is_file()


def check_variables(f: Facts) -> CheckResult:
    """Names the cell reads but never defines: carried from the notebook, sent with --vars, or missing."""
    ctx = f.ctx
    if ctx.build_error and ctx.build_error.startswith("--vars"):
        return CheckResult("variables", FAIL, ctx.build_error, "Fix --vars, then run the cell again.")
    script = ctx.script
    if ctx.variables is None and (script is None or script.carry is None):
        return CheckResult("variables", SKIP, "needs a running kernel; checked when the cell runs")
    if script is None:
        return CheckResult("variables", WARN, "not checked: the cell could not become a script", "")
    if ctx.variables is None:
        return _static_variables(f, script)
    found = _undefined(f, script, ctx.variables) + _refusals(script.carry)
    if found:
        return result("variables", worst(found))
    return CheckResult("variables", OK, "every name the cell reads is defined in it" + _carried(f, script))


def _carried(f: Facts, script: JobScript) -> str:
    carried = f"; carried: {script.carry.summary()}" if script.carry and script.carry.blocks else ""
    return carried + (f"; sent with --vars: {', '.join(f.spec.vars)}" if f.spec.vars else "")


def _refusals(carry: Carry | None) -> list[Verdict]:
    """What cannot travel, each by name with what to do; and names carried code reads that exist nowhere."""
    if carry is None:
        return []
    found = [Verdict(FAIL, r.why, r.fix) for r in carry.refused]
    if carry.nowhere:
        found.append(Verdict(WARN, f"carried code reads {', '.join(carry.nowhere)}, defined nowhere in the "
                             "notebook: calling it in the job would raise NameError",
                             "Define it in a cell above, or in the job cell."))
    return found


def _static_variables(f: Facts, script: JobScript) -> CheckResult:
    """Without a kernel: the carry read from the cells above; what only running them tells is a skip."""
    carry = script.carry
    assert carry is not None
    kernel_only = [n for n in script.free_names if n in carry.kernel_only]
    nowhere = [f"{n} (line {f.line(line)})" for n, line in script.free_names.items() if n not in carry.kernel_only]
    found = _refusals(carry)
    if nowhere:
        found.append(Verdict(WARN, f"the cell uses {', '.join(nowhere)}, defined in no cell above it",
                             "Define or import it in the cell, or in a cell above."))
    if found:
        return result("variables", worst(found))
    carried = _carried(f, script).removeprefix("; ")
    if kernel_only:
        return CheckResult("variables", SKIP, f"{carried + '; ' if carried else ''}known only to a running kernel: "
                           f"{', '.join(kernel_only)}; checked when the cell runs")
    return CheckResult("variables", OK, f"every name the cell reads is defined in it{_carried(f, script)}")


def _undefined(f: Facts, script: JobScript, variables: Mapping[str, Any]) -> list[Verdict]:
    """Names the job's script reads and never binds: in the kernel (send them) or nowhere (NameError)."""
    refused = {r.name for r in script.carry.refused} if script.carry else set()
    missing = [n for n in script.free_names if n not in refused]
    shown = {n: f"{n} (line {f.line(script.free_names[n])})" for n in missing}
    kinds = {n: _kernel_kind(n, variables) for n in missing}
    uncarried = ", or drop --no-carry" if not f.spec.carry else ""
    found = []
    if sendable := [n for n in missing if kinds[n] == "value"]:
        send = ",".join(dict.fromkeys([*f.spec.vars, *sendable]))
        found.append(Verdict(FAIL, f"the cell uses {', '.join(shown[n] for n in sendable)}, defined in the "
                             "notebook but not sent to the job", f"Add --vars {send}{uncarried}."))
    if modules := [n for n in missing if kinds[n] == "module"]:
        imports = "; ".join(_import_line(n, variables[n]) for n in modules)
        found.append(Verdict(FAIL, f"the cell uses {', '.join(shown[n] for n in modules)}, imported in the "
                             "notebook but not in the cell", f"Import it in the cell: {imports}."))
    if others := [n for n in missing if kinds[n] == "object"]:
        found.append(Verdict(FAIL, f"the cell uses {', '.join(shown[n] for n in others)}, defined in the notebook; "
                             "--vars can only send plain values", f"Define it in the cell{uncarried}."))
    if nowhere := [n for n in missing if kinds[n] == "nowhere"]:
        found.append(Verdict(FAIL, f"{', '.join(shown[n] for n in nowhere)}: defined nowhere, so the job would "
                             "raise NameError", "Define or import it in the cell."))
    return found


def _kernel_kind(name: str, variables: Mapping[str, Any]) -> str:
    """"value" (--vars can send it), "module", "object", or "nowhere"."""
    import types

    from IPython.core.error import UsageError

    from hfjobs_magic.cell.script import render_vars

    if name not in variables or name in IPYTHON_NAMES:
        return "nowhere"
    if isinstance(variables[name], types.ModuleType):
        return "module"
    try:
        render_vars((name,), {name: variables[name]})
    except UsageError:
        return "object"
    return "value"


def _import_line(name: str, module: Any) -> str:
    real = getattr(module, "__name__", name)
    return f"import {real}" if real == name else f"import {real} as {name}"
