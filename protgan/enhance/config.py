"""`EnhanceConfig`: every option of `protgan enhance`, its default and its help text (torch- and
OpenCV-free: the CLI is generated from these fields)."""

from __future__ import annotations

from dataclasses import dataclass

from protgan.core.errors import ProtganError
from protgan.core.options import option
from protgan.data.channels import parse_channels

METHODS: tuple[str, ...] = ("he", "ahe", "clahe")
DEFAULT_CLIP_LIMIT = 2.0  # OpenCV's conventional default; the paper gives no value
DEFAULT_TILE_GRID = 8  # 8 x 8 tiles: 64 x 64-pixel tiles on a 512 x 512 HPA field
APPLY_CHOICES = ("best", "he", "ahe", "clahe", "none")
SELECT_BY_CHOICES = ("ssim", "psnr", "mse", "contrast", "entropy")  # protgan.enhance.report.CRITERIA


@dataclass
class EnhanceConfig:
    """Options of one enhance run (recorded in OUT/config.json)."""

    data: str = option(help="Dataset in the HPA layout (train.csv + train/{Id}_{channel}.png), or a plain folder of "
                            "images (scored file by file).", argument=True)
    out: str = option(help="Output folder (never inside DATA): enhanced dataset, scores.csv, summary.csv, "
                           "comparison.png, config.json. Rerun with the same options to resume.")
    methods: tuple[str, ...] = option(METHODS, "Comma list of methods to score: he (global), ahe (adaptive, no "
                                               "limit), clahe (contrast limited).")
    channels: str = option("rgby", "Channels to enhance: green, rgb, rgby or a comma list; other channels are copied "
                                   "unchanged.")
    clip_limit: float = option(DEFAULT_CLIP_LIMIT, "CLAHE clip limit, in OpenCV's unit: a multiple of the mean bin "
                                                   "height of a tile's histogram (> 0).")
    tile_grid: int = option(DEFAULT_TILE_GRID, "AHE/CLAHE tiles per side (8: 64x64-pixel tiles on a 512x512 image).")
    apply: str = option("clahe", "Method written to the enhanced dataset: clahe (the paper's choice, default), best "
                                 "(by --select-by), he, ahe, or none (scores only).")
    select_by: str = option("ssim", "What --apply best maximises: ssim, psnr, mse (vs the original: the least-changed "
                                    "image wins) or contrast, entropy (no reference).")
    sample: int = option(0, "Score only this many images (seeded choice; 0 = all); the chosen method is still applied "
                            "to all.")
    workers: int = option(0, "Worker processes (0 = one per CPU core).", affects_run=False)
    seed: int = option(0, "Seed of the --sample choice.")
    comparison: int = option(3, "Images shown in comparison.png (0: no figure).", cli="--compare")

    def validate(self) -> None:
        from protgan.enhance.methods import parse_methods  # lazy: imports OpenCV

        self.methods = parse_methods(self.methods if isinstance(self.methods, str) else list(self.methods))
        self.apply, self.select_by = self.apply.lower(), self.select_by.lower()
        parse_channels(self.channels)
        if not self.clip_limit > 0:
            raise ProtganError(f"--clip-limit {self.clip_limit}: must be > 0 (no limit at all is AHE: --methods ahe)")
        if self.tile_grid < 1:
            raise ProtganError(f"--tile-grid {self.tile_grid}: must be >= 1")
        if self.apply not in APPLY_CHOICES:
            raise ProtganError(f"--apply {self.apply!r}: expected one of {', '.join(APPLY_CHOICES)}")
        if self.apply not in ("best", "none") and self.apply not in self.methods:
            raise ProtganError(f"--apply {self.apply}: not among --methods {','.join(self.methods)}")
        if self.select_by not in SELECT_BY_CHOICES:
            raise ProtganError(f"--select-by {self.select_by!r}: expected one of {', '.join(SELECT_BY_CHOICES)}")
        if self.sample < 0:
            raise ProtganError(f"--sample {self.sample}: must be >= 0 (0 scores every image)")
        if self.workers < 0:
            raise ProtganError(f"--workers {self.workers}: must be >= 0 (0 = one per CPU core)")
        if self.comparison < 0:
            raise ProtganError(f"--compare {self.comparison}: must be >= 0")
