"""Made the torch.onnx graphs beside this file; run once, by hand, where torch is installed.

    pip install torch==2.13.0 && python3 tests/graphs/make_torch_graphs.py

The graphs and what torch itself computed for the first rows (torch_expected.json) are checked in, so
the tests need no torch. Two small MLPs, trained for a few hundred steps on scikit-learn's datasets:

* mlp_regressor.onnx: diabetes (10 standardized features) -> one value, output [N, 1];
* mlp_classifier.onnx: iris (4 features) -> 3 logits, output [N, 3], no softmax and no label, as
  classification networks are usually exported.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_diabetes, load_iris

HERE = Path(__file__).resolve().parent
EXPECTED_ROWS = 20


def _mlp(n_in: int, n_out: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(n_in, 16), torch.nn.ReLU(), torch.nn.Linear(16, n_out))


def _train(model: torch.nn.Module, X: np.ndarray, y: torch.Tensor, loss) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    inputs = torch.tensor(X, dtype=torch.float32)
    for _ in range(300):
        optimizer.zero_grad()
        loss(model(inputs), y).backward()
        optimizer.step()
    model.eval()


def _export(model: torch.nn.Module, n_in: int, file: str) -> None:
    torch.onnx.export(model, (torch.zeros(2, n_in),), str(HERE / file), dynamo=False, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})


def main() -> None:
    torch.manual_seed(0)
    diabetes = load_diabetes()
    X_reg = diabetes.data / diabetes.data.std(axis=0)
    y_reg = torch.tensor(diabetes.target, dtype=torch.float32).reshape(-1, 1)
    regressor = _mlp(X_reg.shape[1], 1)
    _train(regressor, X_reg, (y_reg - 150) / 80, torch.nn.functional.mse_loss)
    _export(regressor, X_reg.shape[1], "mlp_regressor.onnx")

    iris = load_iris()
    classifier = _mlp(4, 3)
    _train(classifier, iris.data, torch.tensor(iris.target), torch.nn.functional.cross_entropy)
    _export(classifier, 4, "mlp_classifier.onnx")

    with torch.no_grad():
        rows_reg = X_reg[:EXPECTED_ROWS]
        rows_clf = iris.data[::150 // EXPECTED_ROWS][:EXPECTED_ROWS]
        expected = {
            "torch_version": torch.__version__,
            "regressor": {"rows": rows_reg.tolist(),
                          "values": regressor(torch.tensor(rows_reg, dtype=torch.float32)).ravel().tolist()},
            "classifier": {"rows": rows_clf.tolist(),
                           "probabilities": torch.softmax(classifier(torch.tensor(rows_clf, dtype=torch.float32)),
                                                          dim=1).tolist()},
        }
    (HERE / "torch_expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()
