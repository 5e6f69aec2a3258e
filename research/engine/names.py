"""Names the research API and commands validate against, without the statistics libraries.

``hypothesis`` and ``patterns`` import scipy, statsmodels and arch (about 2 s); the API's
serializers only need these names, so they live here and those modules re-export them.
"""

from __future__ import annotations

CORRECTIONS = {"bh": "fdr_bh", "holm": "holm"}  # multiple-testing method -> statsmodels' name
OVERLAP_METHODS = ("hac", "thin")  # overlapping horizons: Newey-West HAC or thinned samples
