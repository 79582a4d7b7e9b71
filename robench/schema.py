"""The columns of ``results.csv``, shared by the suites that write it and the reports that read it back.

Kept free of torch so that readers (``robench leaderboard``, ``robench compare``) start fast.
"""

RESULT_COLUMNS = ["suite", "test", "variant", "param", "metric", "value", "n", "ci_low", "ci_high"]
