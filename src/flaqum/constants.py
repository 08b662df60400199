"""The normal quantiles of the pipeline's intervals, written once.

- ``Z95`` = 1.96: every 95% interval estimate -/+ 1.96 SE that the pipeline writes or draws
  (docs/outputs.md): the multilevel stage's EB means and changes (``flaqum.multilevel``,
  ``flaqum.models``), the standard error read back from such an interval
  (``flaqum.benchmark.standard_error``), the reports' intervals, gaps and stand-ins. The R
  references of these numbers give the standard errors (``lme4``'s conditional variances), not
  the intervals; the documented interval is 1.96 SE, and its results stay as they were.
- ``Z998`` = 3.090232: ``qnorm(0.999)`` to seven digits, the 99.8% limits: the funnel plots'
  (FunnelPlotR's ``OD_limits`` writes this literal) and the reports' thin 99.8% bars, which
  decide their blue and orange signals.
- ``Z95_FUNNEL`` = 1.959964: ``qnorm(0.975)`` to seven digits, FunnelPlotR's literal for the
  95% funnel limits (``flaqum.funnel``), kept so that ``funnel.csv`` equals FunnelPlotR's
  limits to the digit. The exact quantile, ``scipy.stats.norm.ppf(0.975)``, differs from 1.96
  by 4e-5 (2e-5 relative), far below any digit a reader sees.

The outcome models' intervals use the exact t or normal quantile of their reference
distribution (``flaqum.outcomes``), as R's ``confint`` does.
"""

Z95 = 1.96
Z998 = 3.090232
Z95_FUNNEL = 1.959964
