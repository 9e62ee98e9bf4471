"""DeOP and its ablation rows (paper Sec. 4, Tables 3-5).

- `baseline+ps`: baseline+ with patch severance; the paper's GPS with alpha_{-1} = 1 by default
  (Table 4's best), `ps: mps` / `ps: coverage` and other alphas as options.
- `baseline+cal`: baseline+ with the query-based CAL (K = 1); `cal: conv` for the conv-based decoder.
- `deop`: PS + CAL. The released code's PS rule (identity scaled by mask coverage, METHOD_SPEC 5a) is the
  default, the paper's GPS alpha = 1 is the named option `ps: gps`.
"""

from ..plugin import Plugin

BASELINE_PLUS_PS = Plugin("baseline+ps", "baseline+ with patch severance (GPS alpha_-1 = 1)",
                          text_prompt="learnable", visual_prompt="add", ps="gps", alpha=(1.0,))
BASELINE_PLUS_CAL = Plugin("baseline+cal", "baseline+ with query-based CAL, K = 1",
                           text_prompt="learnable", visual_prompt="add", cal="query", cal_layers=1)
DEOP = Plugin("deop", "DeOP: prompts + PS (released rule) + CAL (K = 1), one pass",
              text_prompt="learnable", visual_prompt="add", ps="coverage", cal="query", cal_layers=1)
