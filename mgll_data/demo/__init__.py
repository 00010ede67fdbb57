"""The embedded demo: a synthetic, learnable, MIMIC-CXR-shaped export (`mgll demo export`) and the
one-command tour of the whole toolkit over it (`mgll demo run`).

Nothing here is real patient data: images are drawn, reports are templated, identifying details are
invented — except a few public DICOM test files copied from installed packages (see `packaged`).
"""

from mgll_data.demo.export import DemoError, DemoSummary, write_demo_export

__all__ = ["DemoError", "DemoSummary", "write_demo_export"]
