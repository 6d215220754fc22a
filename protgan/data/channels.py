"""Channel names, their fixed order (red, green, blue, yellow) and the named channel sets."""

from __future__ import annotations

from protgan.core.errors import ProtganError

# HPA stains: red = microtubules, green = the protein of interest, blue = nucleus, yellow = ER.
CHANNEL_ORDER: tuple[str, ...] = ("red", "green", "blue", "yellow")
CHANNEL_SETS: dict[str, tuple[str, ...]] = {
    "green": ("green",),
    "rgb": ("red", "green", "blue"),
    "rgby": ("red", "green", "blue", "yellow"),
}


def parse_channels(spec: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Channels for a set name (`green`, `rgb`, `rgby`) or a comma list, always in the fixed order."""
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in CHANNEL_SETS:
            return CHANNEL_SETS[key]
        names = [p.strip() for p in key.split(",") if p.strip()]
    else:
        names = [str(p).lower() for p in spec]
    bad = [n for n in names if n not in CHANNEL_ORDER]
    if bad or not names:
        raise ProtganError(
            f"--channels {spec!r}: expected one of {', '.join(CHANNEL_SETS)} or a comma list of "
            f"{', '.join(CHANNEL_ORDER)}"
        )
    return tuple(c for c in CHANNEL_ORDER if c in names)


def channel_set_name(channels: tuple[str, ...]) -> str:
    for name, chans in CHANNEL_SETS.items():
        if chans == tuple(channels):
            return name
    return ",".join(channels)


def rgb_composite_indices(channels: tuple[str, ...]) -> list[int | None]:
    """For display: which index of `channels` feeds R, G and B (yellow is shown in red+green by callers)."""
    return [channels.index(c) if c in channels else None for c in ("red", "green", "blue")]
