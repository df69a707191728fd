"""Quotas that together may ask for more than the pools hold: a warning with file:line, never an error."""

from __future__ import annotations

import subprocess
import sys

from scheduler.policy import load_policy
from tests.builders import programme, stage_yaml

SIZED = ("{name: h100, gpuModel: H100, nodeSelector: {pool: h100}, size: {nodes: 2, gpusPerNode: 8}}",)
UNSIZED = ("{name: h100, gpuModel: H100, nodeSelector: {pool: h100}}",)


def test_a_pool_without_size_that_quotas_draw_on_is_a_warning_naming_its_line():
    policy = programme(stage_yaml("s1", "2026-01-01", "[a, b]", "{a: {H100: 16}, b: {H100: 16}}"), pools=UNSIZED)
    [warning] = policy.warnings
    assert (warning.file, warning.line, warning.field) == ("program.yaml", 8, "spec.pools[0]")
    assert "pool 'h100' has no size: the quotas of s1 ask for 32 H100 GPUs in total" in warning.message


def test_quotas_that_together_exceed_the_sized_pools_are_a_warning_on_the_stage():
    policy = programme(stage_yaml("s1", "2026-01-01", "[a, b]", "{a: {H100: 16}, b: {H100: 8}}"), pools=SIZED)
    [warning] = policy.warnings
    assert (warning.file, warning.field) == ("stages.yaml", "spec.quotas")
    assert warning.message == ("the quotas of s1 ask for 24 H100 GPUs in total, more than the 16 its H100 pools (h100) "
                               "hold: teams will share them and be short")


def test_units_quotas_are_counted_in_units_against_every_pool():
    policy = programme(stage_yaml("s1", "2026-01-01", "[a, b]", "{a: {units: 16}, b: {units: 8}}"), pools=SIZED)
    assert [w.message for w in policy.warnings] == [
        "the quotas of s1 ask for 24 units in total, more than the 16 units all its pools hold: teams will share "
        "them and be short"]


def test_quotas_that_fit_and_the_real_programme_give_no_warning():
    assert programme(stage_yaml("s1", "2026-01-01", "[a, b]", "{a: {H100: 8}, b: {H100: 8}}"), pools=SIZED).warnings == ()
    assert load_policy("policies").warnings == ()


def test_validate_prints_the_warning_and_still_succeeds(tmp_path):
    from tests.builders import program_yaml
    (tmp_path / "program.yaml").write_text(program_yaml(pools=UNSIZED))
    (tmp_path / "stages.yaml").write_text(stage_yaml("s1", "2026-01-01", "[a]", "{a: {H100: 16}}"))
    out = subprocess.run([sys.executable, "-m", "scheduler", "validate", "--policy", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"warning: {tmp_path / 'program.yaml'}:8: spec.pools[0]: pool 'h100' has no size" in out.stdout


def test_units_quotas_that_may_draw_on_an_unsized_pool_are_a_warning_too():
    policy = programme(stage_yaml("s1", "2026-01-01", "[a]", "{a: {units: 64}}"), pools=UNSIZED)
    [warning] = policy.warnings
    assert "the units quotas of s1 (64 units in total) may draw on it" in warning.message
