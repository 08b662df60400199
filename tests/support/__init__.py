"""Helpers for the tests only: data generators and reference implementations (oracles).

Nothing here is part of the package or used by the pipeline; the tests import it as
``support.<module>`` (pytest puts ``tests/`` on ``sys.path``: the test modules are not a
package). Test and benchmark support that a benchmark script needs as well lives in
:mod:`flaqum.testing` instead.
"""
