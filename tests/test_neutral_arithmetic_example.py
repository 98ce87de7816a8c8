from pathlib import Path

from graphkit import testing as gt

PASSES = Path(__file__).resolve().parents[1] / "docs" / "examples" / "passes"  # a user's folder of pass files
ONE = "one = Constant <value = float {1.0}> ()"


def model(body, y="float[2,3] y"):
    return gt.parse_model(f'<ir_version: 8, opset_import: ["" : 13]> g (float[2,3] x) => ({y}) {{ {body} }}')


def test_neutral_arithmetic():
    neutral = gt.load_user_pass(PASSES, "neutral-arithmetic")
    result = gt.assert_matches(neutral, m := model(f"{ONE} t = Mul(one, x) y = Relu(t)"), rule="Mul", times=1)
    gt.assert_numerically_equal(m, result.model, atol=0, rtol=0)
    gt.assert_idempotent(neutral, result.model)
    wide = "c = Constant <value = float[3,1,1] {0.0, 0.0, 0.0}> () t = Relu(x) y = Add(t, c)"
    gt.assert_no_match(neutral, model(wide, "float[3,2,3] y"), reason_contains="broadcast changes the shape")
    gt.assert_no_match(neutral, model(f"{ONE} y = Div(x, one)"), reason_contains="graph output fed directly by")
