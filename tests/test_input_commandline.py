"""Issue 15: user values on command lines (vLLM) and in environment files (Jitsi) cannot set what the operator
owns or break the file they land in."""

from __future__ import annotations

import pytest

from sovereign_suite.api.validation import InputError
from sovereign_suite.components import llm
from sovereign_suite.components.base import build_contexts

from .helpers import load_example, suite_with


def llm_suite(**model_fields):
    model = {"name": "m", "modelId": "org/model", "gpuProducts": ["NVIDIA-H100-80GB-HBM3"], **model_fields}
    return suite_with("two-countries", {"components": {"llm": {"enabled": True, "models": [model]}}})


def parse_problems(**model_fields) -> list[str]:
    with pytest.raises(InputError) as err:
        llm_suite(**model_fields)
    return [str(p) for p in err.value.problems]


def render_problems(*extra_args: str) -> list[str]:
    suite = llm_suite(extraArgs=list(extra_args))
    _, clouds = load_example("two-countries")
    with pytest.raises(InputError) as err:
        llm.render(build_contexts(suite, clouds)[0])
    return [str(p) for p in err.value.problems]


# ---- modelId, servedName ------------------------------------------------------------------------------

@pytest.mark.parametrize("model_id", ["--port=9", "-x", "org/model --port 9", "org/../../x y"])
def test_model_id_that_is_not_a_model_id_is_rejected(model_id):
    problems = parse_problems(modelId=model_id)
    assert problems == [f"spec.components.llm.models[0].modelId: {model_id!r} is not a Hugging Face model id "
                        "(org/name) or an absolute path; it may not begin with '-'"]


@pytest.mark.parametrize("model_id", ["meta-llama/Llama-3.3-70B-Instruct", "mistralai/Mistral-Small-3.2-24B",
                                      "/cache/models/llama", "gpt2"])
def test_model_ids_that_stay_valid(model_id):
    assert llm_suite(modelId=model_id).spec.components.llm.models[0].model_id == model_id


def test_served_name_may_not_begin_with_a_dash():
    assert parse_problems(servedName="--port=9")[0].startswith("spec.components.llm.models[0].servedName: '--port=9'")


# ---- extraArgs: owned flags, also abbreviated ----------------------------------------------------------

@pytest.mark.parametrize("arg, message", [
    ("--tensor-parallel=4", "--tensor-parallel (read as --tensor-parallel-size) is set by the operator; set the "
                            "model's gpusPerReplica instead"),
    ("--tensor_parallel=4", "--tensor_parallel (read as --tensor-parallel-size) is set by the operator; set the "
                            "model's gpusPerReplica instead"),
    ("--po=9", "--po (read as --port) is set by the operator"),
    ("--served=x", "--served (read as --served-model-name) is set by the operator; set the model's servedName instead"),
    ("-tp4", "-tp4 (read as -tp) is set by the operator; set the model's gpusPerReplica instead"),
    ("-t", "-t (read as -tp) is set by the operator; set the model's gpusPerReplica instead"),
    ("--port=9", "--port is set by the operator"),
])
def test_abbreviated_owned_flags_are_rejected(arg, message):
    assert render_problems("--enforce-eager", arg) == [f"spec.components.llm.models[0].extraArgs: {message}"]


@pytest.mark.parametrize("arg", ["--enforce-eager", "--max-num-seqs=64", "--model-impl=vllm", "--portal", "64", "-"])
def test_flags_that_own_nothing_pass(arg):
    assert llm.owned_flag_of(arg) is None


def test_extra_arg_with_a_control_character_is_rejected():
    problems = parse_problems(extraArgs=["--max-num-seqs\n64"])
    assert problems[0].startswith("spec.components.llm.models[0].extraArgs[0]: ")


# ---- Jitsi extraConfig ---------------------------------------------------------------------------------

def test_jitsi_extra_config_key_with_a_newline_is_rejected():
    with pytest.raises(InputError) as err:
        suite_with("two-countries", {"components": {"jitsi": {"extraConfig": {"TOOLBAR\nBUTTONS": "x"}}}})
    assert [str(p) for p in err.value.problems] == [
        "spec.components.jitsi.extraConfig.TOOLBAR\nBUTTONS: 'TOOLBAR\\nBUTTONS' is not a valid environment variable "
        "name ([A-Za-z_][A-Za-z0-9_]*)"]


def test_jitsi_extra_config_value_with_a_quote_is_rejected():
    with pytest.raises(InputError) as err:
        suite_with("two-countries", {"components": {"jitsi": {"extraConfig": {"DEFAULT_LANGUAGE": 'fr"; os.exit()'}}}})
    assert [p.path for p in err.value.problems] == ["spec.components.jitsi.extraConfig.DEFAULT_LANGUAGE"]


def test_jitsi_extra_config_key_in_a_tenant_override_names_the_tenant():
    with pytest.raises(InputError) as err:
        suite_with("two-countries", {"tenants": [{"country": "FR", "cloud": "fr-secnumcloud",
                                                  "components": {"jitsi": {"extraConfig": {"A B": "x"}}}}]})
    assert [p.path for p in err.value.problems] == ["spec.tenants[0].components.jitsi.extraConfig.A B"]
