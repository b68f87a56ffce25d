"""``python -m benchmarks.floor`` and ``python -m benchmarks.fusion_reach``: smoke runs on the
autoencoder (one round), and what each promises of its figures."""
from scratchgen.benchmarks import floor, fusion_reach


def test_the_floor_table_splits_the_compiled_step_into_heavy_kernels_and_the_rest(capsys):
    assert floor.HEAVY.search("fused MatMul+Add") and floor.HEAVY.search("backward FusedLSTM.backward")
    assert not floor.HEAVY.search("forward Mul") and not floor.HEAVY.search("host Optimizer.step")
    floor.main(["ae", "--rounds", "1"])
    row = capsys.readouterr().out.splitlines()[-1]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    twin, compiled, heavy, other, ratio, floor_ratio = map(float, cells[1:])
    assert cells[0] == "ae" and twin > 0 and 0 < heavy <= compiled
    assert abs(other - (compiled - heavy)) < 0.11 and floor_ratio <= ratio + 0.01


def test_the_narrower_reach_is_switched_on_only_inside_its_block(capsys):
    from scratchgen.compiler import fusion
    wide = fusion._longest_group
    with fusion_reach.narrower_reach():
        assert fusion._longest_group is not wide and fusion._indexing((1, 3, 1, 1), (2, 3, 4, 4)) is None
    assert fusion._longest_group is wide and fusion._indexing((1, 3, 1, 1), (2, 3, 4, 4)) is not None
    fusion_reach.main(["ae", "--rounds", "2"])
    narrow, wide_count = capsys.readouterr().out.split(":")[1].split(";")[0].split(" ops -> ")
    assert int(wide_count) <= int(narrow)
