"""Keep the arrows of DESIGN.md §2 honest: scan every import in the package
(including imports inside functions) and check them against the layer rules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "libp2pia"

PURE = ("gguf", "fragments", "quant", "model", "sim")
# package -> top-level modules it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    **{p: ("trio", "libp2p", "multiaddr", "libp2pia.net", "libp2pia.wire", "libp2pia.node", "libp2pia.engine")
       for p in PURE},
    "engine": ("libp2p", "multiaddr", "libp2pia.net", "libp2pia.wire", "libp2pia.node"),
    "net": ("numba", "libp2pia.quant", "libp2pia.model", "libp2pia.engine", "libp2pia.node"),
    "wire": ("numba", "libp2pia.quant", "libp2pia.model", "libp2pia.engine", "libp2pia.node", "libp2pia.net"),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level + (1 if path.name == "__init__.py" else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
                found.add(mod)
                if node.module is None:
                    found.update(f"{mod}.{a.name}" for a in node.names)
            else:
                found.add(node.module or "")
    return found


def _violations(pkg: str) -> list[str]:
    bad = []
    for f in sorted((PKG / pkg).rglob("*.py")):
        for mod in _imports(f):
            for banned in FORBIDDEN.get(pkg, ()):
                if mod == banned or mod.startswith(banned + "."):
                    bad.append(f"{f.relative_to(PKG.parent)} imports {mod}")
    return bad


@pytest.mark.parametrize("pkg", sorted(FORBIDDEN))
def test_layer_arrows(pkg: str) -> None:
    assert (PKG / pkg).is_dir(), f"libp2pia.{pkg} is missing"
    assert _violations(pkg) == []


def test_only_quant_imports_numba() -> None:
    bad = []
    for f in sorted(PKG.rglob("*.py")):
        if (PKG / "quant") in f.parents:
            continue
        bad += [f"{f.relative_to(PKG.parent)} imports {m}" for m in _imports(f) if m == "numba" or m.startswith("numba.")]
    assert bad == []


def test_the_scanner_sees_violations(tmp_path: Path) -> None:
    """The check itself must be able to fail: a planted import is reported."""
    src = "def f():\n    import trio\n    from ..net import host\n"
    f = PKG / "model" / "_planted_for_test.py"
    f.write_text(src)
    try:
        assert any("imports trio" in v for v in _violations("model"))
        assert any("libp2pia.net" in v for v in _violations("model"))
    finally:
        f.unlink()
