"""Stock TensorFlow Serving: a request counter per model, no per-version counter.

Upstream TF Serving counts requests as `:tensorflow:serving:request_count{model_name, status}`
(`/tensorflow/serving/request_count` in `servables/tensorflow/util.cc`); nothing it exports says
which version served a call. So the evidence is per model: a model with no calls all window, under
every proof of reach the raw mode has, has all its versions safe; every version of a model with
calls (successful or not: a failing client still wants the model) is in-use. Everything else (the
version-directory rule, `--model-config`, the REST status API) is the patched preset's: it is the
same server. docs/tfserving-patch.md says which preset fits.
"""

from __future__ import annotations

from dataclasses import replace

from retire.servers import tfserving

SERVER = replace(
    tfserving.SERVER,
    preset="tfserving",
    metric=":tensorflow:serving:request_count",
    version_label="",  # none: per model
)
