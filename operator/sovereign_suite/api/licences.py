"""Which model licences count as open, for fine-tuning (issue 25: "only open models").

A served model declares its licence (``components.llm.models[].license``, an SPDX identifier where one exists, as a Hugging Face model
card's ``license:`` field).
Fine-tuning is allowed only on a model whose declared licence is in ``OPEN_LICENCES``; a model that declares no
licence is refused, never assumed open: the operator cannot read a licence from a model id, and "we did not say"
must not become "anyone may adapt it".

Open means an OSI-approved licence (https://opensource.org/licenses) that puts no restriction on the field of use
or on who may use the model: the permissive ones below, and CC0 (a public-domain dedication, no conditions).

Not open, with the reason (the identifiers are those Hugging Face model cards use in their ``license:`` field):

- ``llama2``, ``llama3``, ``llama3.1``, ``llama3.2``, ``llama3.3``, ``llama4`` (Meta's Llama Community License
  Agreement): an acceptable-use policy, a separate licence for licensees above 700 million monthly active users
  granted at Meta's discretion, and (Llama 2) a ban on improving other models with its outputs; the OSI says it is
  not open source (https://opensource.org/blog/metas-llama-2-license-is-not-open-source; analysis of the Open
  Source Definition: https://shujisado.org/2025/01/27/why-is-the-llama-license-not-open-source).
- ``gemma`` (Google's Gemma Terms of Use, Gemma 1 to 3): a Prohibited Use Policy passed down to every user and
  Google's right to restrict use remotely (https://ai.google.dev/gemma/terms,
  https://ai.google.dev/gemma/prohibited_use_policy). Gemma 4 is published under Apache-2.0
  (https://ai.google.dev/gemma/apache_2): declare ``Apache-2.0`` for it.
- ``mnpl-0.1`` (Mistral AI Non-Production License, e.g. the first Codestral) and ``mrl-0.1`` (Mistral AI Research
  License, e.g. Mistral Large 2): no production use (https://mistral.ai/licenses/MNPL-0.1.md,
  https://mistral.ai/licenses/MRL-0.1.md). Mistral's Apache-2.0 models (Mistral 7B, Mixtral 8x7B and 8x22B,
  Mistral Small 3 and later small models) are open: declare ``Apache-2.0``.
- ``openrail``, ``creativeml-openrail-m``, ``bigscience-openrail-m`` (RAIL licences): use restrictions by design.
- ``other``, ``unknown``: nothing the operator can judge.

Any value not in ``OPEN_LICENCES`` is refused: the list says what is open, never what is not.
"""

from __future__ import annotations

# SPDX identifiers (https://spdx.org/licenses/). Matched case-insensitively (Hugging Face writes apache-2.0).
OPEN_LICENCES: tuple[str, ...] = (
    "Apache-2.0",
    "MIT",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "ISC",
    "CC0-1.0",
)

# Known not-open licences, for a message that says why (anything else not open gets the generic one).
NOT_OPEN_REASONS: dict[str, str] = {
    **{name: "Meta's Llama Community License restricts use (acceptable-use policy, 700M monthly users clause): not "
       "an open licence" for name in ("llama2", "llama3", "llama3.1", "llama3.2", "llama3.3", "llama4")},
    "gemma": "Google's Gemma Terms of Use restrict use (Prohibited Use Policy): not an open licence (Gemma 4 is "
             "Apache-2.0)",
    "mnpl-0.1": "the Mistral AI Non-Production License forbids production use",
    "mrl-0.1": "the Mistral AI Research License forbids production use",
    "openrail": "a RAIL licence restricts use by design",
    "creativeml-openrail-m": "a RAIL licence restricts use by design",
    "bigscience-openrail-m": "a RAIL licence restricts use by design",
}

LICENCE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.+-]*$"  # SPDX ids and Hugging Face's licence names


def is_open(licence: str | None) -> bool:
    """Whether a declared licence is open. None (not declared) is not."""
    if licence is None:
        return False
    return licence.lower() in {name.lower() for name in OPEN_LICENCES}


def why_not_open(licence: str | None) -> str:
    """The reason a licence is refused for fine-tuning (only called when ``is_open`` is false)."""
    if licence is None:
        return ("the model declares no licence (components.llm.models[].license): a model is never assumed open; "
                f"fine-tuning needs one of {', '.join(OPEN_LICENCES)}")
    reason = NOT_OPEN_REASONS.get(licence.lower(), "not in the operator's list of open licences")
    return f"licence {licence!r}: {reason}; fine-tuning needs one of {', '.join(OPEN_LICENCES)}"
