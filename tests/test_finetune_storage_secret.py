"""The tenant's object-storage credentials reach the namespace where its FineTunes' Jobs run (and vLLM's adapter
loader reads them) whether the suite's backups are on or off (api/secret_refs.py secret_references,
reconcile/finetune_serving.py training_countries, used by the suite pass's dereference step). Before, the copy
was made for backups only: with backups off the training pod waited for its Secret volume. The operator making
the copy on the local control plane: tests/cluster/test_finetune_storage.py."""

from __future__ import annotations

import copy

from sovereign_suite.api.secret_refs import secret_references
from sovereign_suite.components.base import build_contexts
from sovereign_suite.reconcile.finetune_serving import training_countries
from sovereign_suite.reconcile.problems import SuiteKey

from .finetune_fixtures import FINETUNE, STORAGE, clouds, suite

PATH = "NationalCloud/fr-secnumcloud.spec.objectStorage.credentialsSecretRef"


def refs_list(s, cs, fine_tuning: bool) -> list:
    fr = build_contexts(s, cs)[0]
    assert fr.tenant.country == "FR"
    return secret_references(s, 0, fr.tenant, fr.components, fr.backups, fr.object_storage,
                             fr.cloud.spec.object_storage if fine_tuning else None)


def refs_of(s, cs, fine_tuning: bool) -> dict[str, tuple[str, str]]:
    return {r.name: (r.path, r.component) for r in refs_list(s, cs, fine_tuning)}


def test_backups_off_a_tenant_that_fine_tunes_gets_the_storage_credentials_and_one_that_does_not_none() -> None:
    s, cs = suite(), clouds()
    assert not build_contexts(s, cs)[0].backups.enabled
    assert refs_of(s, cs, fine_tuning=True)[STORAGE["credentialsSecretRef"]] == (PATH, "finetune")
    assert STORAGE["credentialsSecretRef"] not in refs_of(s, cs, fine_tuning=False)


def test_backups_on_the_same_secret_is_referenced_once() -> None:
    s = suite()
    doc = s.model_dump(by_alias=True, exclude_none=True)
    doc["spec"]["backups"] = {"enabled": True, "encryptionRecipientSecretRef": {"name": "backup-recipient",
                                                                          "key": "recipient"}}
    s = type(s).model_validate(doc)
    cs = clouds()
    assert build_contexts(s, cs)[0].backups.enabled
    for fine_tuning in (False, True):
        refs = refs_of(s, cs, fine_tuning)
        assert refs[STORAGE["credentialsSecretRef"]] == (PATH, "backup")
        names = [r.name for r in refs_list(s, cs, fine_tuning)]
        assert names.count(STORAGE["credentialsSecretRef"]) == 1 and "backup-recipient" in names


def test_the_countries_that_train_are_those_of_the_finetunes_naming_the_suite() -> None:
    key = SuiteKey(FINETUNE["spec"]["suite"]["namespace"], FINETUNE["spec"]["suite"]["name"])
    de = copy.deepcopy(FINETUNE)
    de["spec"]["country"] = "DE"
    other = copy.deepcopy(FINETUNE)
    other["spec"]["suite"]["name"] = "another-suite"
    going = copy.deepcopy(FINETUNE)
    going["metadata"]["deletionTimestamp"] = "2026-12-03T00:00:00Z"  # its Job may still run
    assert training_countries(key, [FINETUNE]) == {"FR"}
    assert training_countries(key, [de, other]) == {"DE"}
    assert training_countries(key, [going]) == {"FR"}
    assert training_countries(key, [other, {"spec": {}}]) == set()
