"""Reading an uploaded ONNX graph as converters emit it, and the graph the server actually runs.

An uploaded graph takes either one float or double tensor [N, n_features],
or one input per feature, [N, 1] each, named like the feature: float,
double, int64 (whole numbers) or string, as skl2onnx converts a pipeline
fitted on a DataFrame. It gives, in whatever order and beside whatever else:

* a regressor: one float/double tensor [N] or [N, 1], the value;
* a classifier from a converter (skl2onnx, onnxmltools): a label tensor
  (int64 or string, [N]) and the class probabilities, either as a float
  tensor [N, n_classes] or as a ZipMap (a sequence of maps). For a ZipMap,
  the probabilities are the tensor feeding it, and its labels give the
  column order;
* a classifier from a network (torch.onnx): one float tensor [N, n_classes]
  and no label. When the node computing it is a Softmax it is taken as the
  probabilities, a LogSoftmax as log-probabilities, anything else as logits
  to which the server applies a softmax. Its classes are ``classes=``, or
  else the column indexes 0..n_classes-1;
* a binary classifier from a network, uploaded with ``task="classification"``:
  one float tensor [N] or [N, 1], the probability of the second class when a
  Sigmoid computes it, else its logit (the server applies the sigmoid).
  Classes as above, [0, 1] by default.

``read()`` says what a graph is (at upload, in describe.describe_onnx).
``scoring_graph()`` turns it, once per load, into a graph with a single output,
the regression values or the class probabilities: the tensor feeding a
ZipMap becomes the output, a softmax (or exp) is appended to logits (or
log-probabilities), and nodes nothing then needs (the ZipMap, the label) are
dropped. The per-row scoring path then reads one buffer, as for compiled
graphs (engines.OnnxEngine).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidModel
from ..schema import NUMBER, STRING

# onnx.TensorProto element types: FLOAT = 1, INT64 = 7, STRING = 8, DOUBLE = 11.
FLOAT_TYPES = {1, 11}
LABEL_TYPES = {7, 8}
COLUMN_TYPES = {1: NUMBER, 11: NUMBER, 7: NUMBER, 8: STRING}  # of an input holding one feature
_TYPE_NAMES = {1: "float", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 8: "string", 9: "bool", 10: "float16",
               11: "double"}
ACCEPTED = ("one float or double tensor input [N, n_features] (or one [N, 1] input per feature: float, double, "
            "int64 or string); outputs: a regression value [N] or [N, 1], or "
            "class probabilities [N, n_classes] (a tensor, a ZipMap, or one Softmax/logits tensor) with or "
            "without a label [N]")

PROBABILITIES, LOG_PROBABILITIES, LOGITS, VALUE = "probabilities", "log_probabilities", "logits", "value"
# A binary classifier's one column (task="classification"): the second class's probability, or its logit.
POSITIVE_PROBABILITY, POSITIVE_LOGIT = "positive_probability", "positive_logit"
_SCORES_NAME = "pgml_trigger_scores"


@dataclass(frozen=True)
class GraphReading:
    feature_names: tuple[str, ...] | None  # the inputs' names when the graph takes one input per feature
    feature_types: tuple[str, ...] | None  # NUMBER or STRING for each of those
    n_features: int | None
    task: str  # "classification" | "regression"
    classes: list | None  # labels in probability column order, when the graph names them
    n_classes: int | None
    scores: str  # the tensor holding the values or the class scores
    scores_kind: str  # VALUE, PROBABILITIES, LOG_PROBABILITIES, LOGITS, POSITIVE_PROBABILITY or POSITIVE_LOGIT
    labelled: bool  # the graph predicts labels itself (a converter's classifier), so it should name them


def load(payload: bytes):
    import onnx

    try:
        return onnx.load_from_string(payload)
    except Exception as exc:  # protobuf's DecodeError and friends: whatever it is, it is no ONNX model
        raise InvalidModel(f"not an ONNX model: {type(exc).__name__}: {exc}") from exc


def read(model, task: str | None = None) -> GraphReading:
    """What an uploaded graph takes and gives; InvalidModel, naming what was found, when it cannot be scored."""
    graph = model.graph
    inputs = _the_inputs(graph)
    producers = {output: node for node in graph.node for output in node.output}
    # Outputs of other kinds (a sequence that no ZipMap makes, a tensor of another shape) are left unread.
    zipmaps, labels, tables, values = [], [], [], []
    for output in graph.output:
        tensor, dims, producer = output.type.tensor_type, _dims(output), producers.get(output.name)
        if output.type.WhichOneof("value") == "sequence_type" and producer is not None \
                and producer.op_type == "ZipMap":
            zipmaps.append(producer)
        elif output.type.WhichOneof("value") != "tensor_type":
            continue
        elif tensor.elem_type in LABEL_TYPES and _is_column(dims):
            labels.append(output)
        elif tensor.elem_type in FLOAT_TYPES and _is_column(dims):
            values.append(output)
        elif tensor.elem_type in FLOAT_TYPES and len(dims) == 2:
            tables.append(output)
    found = f"found outputs {_describe(graph.output)}; accepted: {ACCEPTED}"
    if zipmaps:
        zipmap = zipmaps[0]
        classes = _attribute_labels(zipmap) or _classifier_labels(graph)
        return GraphReading(*inputs, _task(task, "classification", found), classes,
                            len(classes) if classes else None, zipmap.input[0], PROBABILITIES, True)
    if len(tables) == 1 and not values:
        scores = tables[0]
        n_classes = _dims(scores)[1] if isinstance(_dims(scores)[1], int) else None
        producer = producers.get(scores.name)
        if labels:  # a converter's classifier: its second output is the probabilities
            kind = PROBABILITIES
        else:
            kind = {"Softmax": PROBABILITIES, "LogSoftmax": LOG_PROBABILITIES}.get(
                producer.op_type if producer is not None else None, LOGITS)
        return GraphReading(*inputs, _task(task, "classification", found), _classifier_labels(graph),
                            n_classes, scores.name, kind, bool(labels))
    if len(values) == 1 and not tables and not labels and task == "classification":
        producer = producers.get(values[0].name)
        kind = POSITIVE_PROBABILITY if producer is not None and producer.op_type == "Sigmoid" else POSITIVE_LOGIT
        return GraphReading(*inputs, task, None, 2, values[0].name, kind, False)
    if len(values) == 1 and not tables and not labels:
        return GraphReading(*inputs, _task(task, "regression", found), None, None, values[0].name,
                            VALUE, False)
    raise InvalidModel(f"pgml_trigger cannot tell what to score in this ONNX graph: {found}")


def scoring_graph(payload: bytes, task: str) -> tuple[bytes, str]:
    """(the graph to run, the name of its one output) for an uploaded graph recorded with ``task``."""
    from onnx import helper

    model = load(payload)
    reading = read(model, task)
    graph = model.graph
    outputs = [output for output in graph.output if output.name == reading.scores]
    if outputs and reading.scores_kind in (VALUE, PROBABILITIES) and len(graph.output) == 1:
        return payload, reading.scores
    scores = reading.scores
    elem_type = _elem_type(model, scores)
    if reading.scores_kind in (LOGITS, LOG_PROBABILITIES):
        operator = "Softmax" if reading.scores_kind == LOGITS else "Exp"
        attributes = {"axis": 1} if operator == "Softmax" else {}
        graph.node.append(helper.make_node(operator, [scores], [_SCORES_NAME], name=_SCORES_NAME, **attributes))
        scores = _SCORES_NAME
    elif reading.scores_kind in (POSITIVE_PROBABILITY, POSITIVE_LOGIT):
        _append_both_classes(graph, scores, elem_type, reading.scores_kind == POSITIVE_LOGIT)
        scores = _SCORES_NAME
    if outputs and scores == reading.scores:  # already an output: keep its declared shape
        kept = outputs[0]
    else:
        kept = helper.make_tensor_value_info(scores, elem_type, [None, reading.n_classes])
    del graph.output[:]
    graph.output.append(kept)
    _prune(graph, scores)
    return model.SerializeToString(), scores


def _append_both_classes(graph, scores: str, elem_type: int, logit: bool) -> None:
    """[1 - p, p] as _SCORES_NAME [N, 2], from p (or its logit) as [N] or [N, 1]."""
    import numpy as np
    from onnx import helper, numpy_helper

    dtype = np.float64 if elem_type == 11 else np.float32
    prefix = _SCORES_NAME + "_"
    graph.initializer.extend([numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), prefix + "shape"),
                              numpy_helper.from_array(np.array(1, dtype=dtype), prefix + "one")])
    nodes = [helper.make_node("Reshape", [scores, prefix + "shape"], [prefix + "column"])]
    if logit:
        nodes.append(helper.make_node("Sigmoid", [prefix + "column"], [prefix + "positive"]))
    positive = prefix + ("positive" if logit else "column")
    nodes += [helper.make_node("Sub", [prefix + "one", positive], [prefix + "negative"]),
              helper.make_node("Concat", [prefix + "negative", positive], [_SCORES_NAME], axis=1)]
    graph.node.extend(nodes)


def _the_inputs(graph) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None, int | None]:
    """(feature names, feature types, number of features): names and types only for one input per feature."""
    initializers = {tensor.name for tensor in graph.initializer}
    inputs = [item for item in graph.input if item.name not in initializers]
    if len(inputs) > 1 or (inputs and inputs[0].type.tensor_type.elem_type not in FLOAT_TYPES
                            and _dims(inputs[0])[1:] == [1]):
        # One feature each: [N, 1], what the engine feeds them (engines.onnx_inputs)
        if all(_dims(item)[1:] == [1] and item.type.tensor_type.elem_type in COLUMN_TYPES for item in inputs):
            return (tuple(item.name for item in inputs),
                    tuple(COLUMN_TYPES[item.type.tensor_type.elem_type] for item in inputs), len(inputs))
        raise InvalidModel(f"the ONNX graph has {len(inputs)} inputs: {_describe(inputs)}; accepted: {ACCEPTED}")
    if not inputs:
        raise InvalidModel(f"the ONNX graph has no inputs; accepted: {ACCEPTED}")
    graph_input = inputs[0]
    dims = _dims(graph_input)
    if graph_input.type.WhichOneof("value") != "tensor_type" \
            or graph_input.type.tensor_type.elem_type not in FLOAT_TYPES or len(dims) != 2:
        raise InvalidModel(f"the ONNX input is {_describe([graph_input])}; accepted: {ACCEPTED}"
                           + ("; image or sequence tensors are not scored from table rows" if len(dims) > 2 else ""))
    if dims[0] == 1:
        raise InvalidModel(f"the ONNX input is {_describe([graph_input])}, fixed to one row; accepted: {ACCEPTED} "
                           "(torch.onnx.export: dynamic_axes={input: {0: 'N'}})")
    return None, None, dims[1] if isinstance(dims[1], int) else None


def _task(given: str | None, read_off: str, found: str) -> str:
    if given is not None and given != read_off:
        role = "classifier" if read_off == "classification" else "regressor"
        raise InvalidModel(f"task={given!r}, but the ONNX graph's outputs are those of a {role}: {found}")
    return read_off


def _dims(value_info) -> list:
    """The shape as ints where fixed and the dimension's name (or None) where not; [] for a non-tensor."""
    if value_info.type.WhichOneof("value") != "tensor_type" or not value_info.type.tensor_type.HasField("shape"):
        return []
    return [dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or None)
            for dim in value_info.type.tensor_type.shape.dim]


def _is_column(dims: list) -> bool:
    return len(dims) == 1 or (len(dims) == 2 and dims[1] == 1)


def _describe(values) -> str:
    def one(value) -> str:
        kind = value.type.WhichOneof("value")
        if kind != "tensor_type":
            return f"{value.name} ({kind.replace('_type', '') if kind else 'untyped'})"
        shape = ", ".join("N" if i == 0 and not isinstance(d, int) else str(d if d is not None else "?")
                          for i, d in enumerate(_dims(value)))
        element = _TYPE_NAMES.get(value.type.tensor_type.elem_type, str(value.type.tensor_type.elem_type))
        return f"{value.name} [{shape}] {element}"

    return ", ".join(one(value) for value in values) or "none"


def _attribute_labels(node) -> list | None:
    for attribute in node.attribute:
        if attribute.name == "classlabels_int64s" and attribute.ints:
            return list(attribute.ints)
        if attribute.name == "classlabels_strings" and attribute.strings:
            return [label.decode() for label in attribute.strings]
    return None


def _classifier_labels(graph) -> list | None:
    """The class labels a converter wrote on its classifier operator (skl2onnx, onnxmltools)."""
    for node in graph.node:
        labels = _attribute_labels(node)
        if labels:
            return labels
    return None


def _elem_type(model, name: str) -> int:
    """The element type of a tensor in the graph, as declared or else as ONNX's shape inference finds it."""
    import onnx

    for inferred in (False, True):
        graph = onnx.shape_inference.infer_shapes(model).graph if inferred else model.graph
        for value in (*graph.value_info, *graph.output):
            if value.name == name and value.type.WhichOneof("value") == "tensor_type" \
                    and value.type.tensor_type.elem_type:
                return value.type.tensor_type.elem_type
    return 1  # float: what converters and torch.onnx emit


def _prune(graph, output: str) -> None:
    """Drop the nodes and initializers the output does not depend on (nodes are in topological order)."""
    needed = {output}
    kept = []
    for node in reversed(graph.node):
        if needed.intersection(node.output):
            kept.append(node)
            needed.update(name for name in node.input if name)
            for attribute in node.attribute:  # a subgraph may read outer names; keep it whole
                if attribute.g.node or attribute.graphs:
                    needed.update(_subgraph_inputs(attribute))
    del graph.node[:]
    graph.node.extend(reversed(kept))
    unused = {tensor.name for tensor in graph.initializer} - needed
    initializers = [tensor for tensor in graph.initializer if tensor.name not in unused]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    # Graphs of IR version < 4 list their initializers among the inputs too; an input left without its
    # initializer would become one the caller must feed.
    inputs = [item for item in graph.input if item.name not in unused]
    del graph.input[:]
    graph.input.extend(inputs)


def _subgraph_inputs(attribute) -> set:
    names = set()
    for subgraph in (attribute.g, *attribute.graphs):
        for node in subgraph.node:
            names.update(node.input)
    return names
