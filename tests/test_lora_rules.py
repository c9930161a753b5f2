"""api/lora_rules.py: the --max-lora-rank choice and the adapter checks vLLM applies (sources cited there)."""

import pytest

from sovereign_suite.api.lora_rules import adapter_config_problems, max_lora_rank_flag


@pytest.mark.parametrize(("ranks", "flag"), [([8], 8), ([4, 8], 8), ([9], 16), ([1], 1), ([300], 320), ([], 1)])
def test_max_lora_rank_flag_is_the_smallest_value_that_fits(ranks, flag):
    assert max_lora_rank_flag(ranks) == flag


def test_a_rank_above_vllms_largest_is_refused():
    with pytest.raises(ValueError, match="512"):
        max_lora_rank_flag([513])


def test_a_peft_adapter_vllm_loads_has_no_problem():
    assert adapter_config_problems({"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}) == []


def test_what_vllm_refuses_is_named():
    problems = adapter_config_problems({"r": 8, "lora_alpha": 16, "target_modules": ["q_proj"],
                                        "modules_to_save": ["lm_head"], "use_dora": True})
    assert problems == ["modules_to_save must be empty (vLLM only supports modules_to_save being None)",
                        "use_dora must be false (vLLM does not support DoRA)"]
    assert adapter_config_problems({"lora_alpha": 16}) == ["r is missing", "target_modules is missing"]
    assert adapter_config_problems({"r": "8", "lora_alpha": 1, "target_modules": "all"}) == [
        "r must be an integer, not '8'"]
