"""The distortion registry as text (terminal table, markdown for README, csv) and name selection."""
from __future__ import annotations

import distortions
from rankiqa.errors import InvalidOption, UnknownName, check_choice


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_format_value(v) for v in value) + ")"
    return str(value)


def human_targets() -> dict[tuple[str, int], float]:
    """{(name, level): KADID-10k mean MOS} for the (distortion, level)s that have a human target."""
    from rankiqa.calibration import load_targets

    return {key: target.mos for key, target in load_targets().items()}


def mos_caption(mos: float | None) -> str:
    """How a human target is shown: ``MOS 4.38`` (KADID-10k, 1-5, higher is better) or ``no MOS``."""
    return "no MOS" if mos is None else f"MOS {mos:.2f}"


def rows() -> list[dict[str, str]]:
    """One dict per registered type: name, family, parameter, level 1..5 values, the human MOS
    target of levels 1..5 (KADID-10k, 1-5, higher is better; '-' = no target), description."""
    targets = human_targets()
    out = []
    for name in distortions.names():
        spec = distortions.get(name)
        row = {"name": name, "family": spec.family, "parameter": spec.parameter}
        row.update({f"L{k}": _format_value(v) for k, v in enumerate(spec.levels, start=1)})
        row["MOS L1-L5"] = " ".join(f"{targets[name, k]:.2f}" if (name, k) in targets else "-"
                                    for k in range(1, len(spec.levels) + 1))
        row["description"] = spec.description
        out.append(row)
    return out


def distortion_table(fmt: str = "table") -> str:
    """The registry rendered as ``table`` (aligned text), ``markdown`` or ``csv``."""
    data = rows()
    columns = list(data[0])
    if fmt == "csv":
        from rankiqa.csvio import csv_text

        return csv_text(columns, data).rstrip("\n")
    if fmt == "markdown":
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(row[c].replace("|", "\\|") for c in columns) + " |" for row in data]
        return "\n".join(lines)
    check_choice("fmt", fmt, ("table", "markdown", "csv"))
    short = [c for c in columns if c != "description"]
    widths = {c: max(len(c), *(len(row[c]) for row in data)) for c in short}
    lines = ["  ".join(c.ljust(widths[c]) for c in short) + "  description"]
    lines += ["  ".join(row[c].ljust(widths[c]) for c in short) + "  " + row["description"] for row in data]
    return "\n".join(lines)


def get_distortion(name: str) -> distortions.DistortionSpec:
    """``distortions.get(name)``; an unknown name raises rankiqa's ``UnknownName`` (a ``KeyError``
    and ``ValueError``) listing close matches."""
    try:
        return distortions.get(name)
    except distortions.UnknownDistortion as exc:
        raise UnknownName(str(exc)) from None


def select_distortions(spec: str) -> list[str]:
    """Names from 'all', 'NAME,NAME' or 'family:NAME' (families may be mixed with names).

    'all' is every single type; the composed presets (``family:composed``) are chosen by name or family.
    An unknown name or family raises ``UnknownName``; a spec that selects nothing, ``InvalidOption``.
    """
    if spec.strip() == "all":
        return distortions.names(composed=False)
    selected: list[str] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        if item.startswith("family:"):
            family = item.split(":", 1)[1]
            members = [n for n in distortions.names() if distortions.get(n).family == family]
            if not members:
                raise UnknownName(f"unknown distortion family {family!r}; known: {', '.join(distortions.families())}")
            selected.extend(members)
        else:
            get_distortion(item)
            selected.append(item)
    if not selected:
        raise InvalidOption(f"no distortion selected by {spec!r}")
    return list(dict.fromkeys(selected))
