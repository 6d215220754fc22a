"""The whole pipeline on the embedded default data (`protgan demo`): demo-data -> enhance -> train-gan ->
synth -> fid -> compare -> report.md / report.html."""

from protgan.demo.pipeline import PLANS, STAGES, DemoConfig, DemoPlan, DemoResult, run_demo
from protgan.demo.report import write_report

__all__ = ["PLANS", "STAGES", "DemoConfig", "DemoPlan", "DemoResult", "run_demo", "write_report"]
