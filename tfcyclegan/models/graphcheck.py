"""What a SavedModel would run, checked before it is loaded.

A SavedModel is code: its graph's ops run when a signature is called, and some run while
`tf.saved_model.load` restores it (resource initializers, saveable objects' restore
functions). An op can write or read any file (WriteFile, ReadFile, SaveV2...), list
folders, call back into Python (PyFunc, EagerPyFunc) or read a dataset. So before a
SavedModel is loaded (translate, evaluate, study), every op of its graph and of every
function in its library, nested or not, is held to ALLOWED: the ops a tfcyclegan
translator is made of (tfcyclegan export's SavedModels, float32 and uint8 endpoints) and
a few pure tensor ops of the same kind. The one exception is the checkpoint saver the
SavedModel format itself carries (`saver_def`: SaveV2, RestoreV2, MergeV2Checkpoints...),
whose functions `tf.saved_model.load` never runs (it restores the variables in Python); a
function the saver and anything else both reach is held to ALLOWED. A TensorFlow 1
SavedModel (no object graph) would run its own restore and init ops while loading, and
tfcyclegan never writes one: it is refused. `--trust-model` skips the check.
"""

import os
from pathlib import Path

from tfcyclegan.models.export_format import SAVEDMODEL_FILE, SAVEDMODEL_TEXT_FILE
from tfcyclegan.util import fsutil
from tfcyclegan.util.errors import UserError

# The ops of tfcyclegan export's SavedModels (any ngf, blocks, affine norm, dropout layout),
# then pure tensor ops a translator exported by another TensorFlow version may use instead.
ALLOWED = frozenset(
    {
        # calls, variables, constants, placeholders
        "StatefulPartitionedCall", "PartitionedCall", "Placeholder", "PlaceholderWithDefault", "Const",
        "VarHandleOp", "ReadVariableOp", "Identity", "IdentityN", "NoOp", "EnsureShape",
        # the generator
        "Conv2D", "Conv2DBackpropInput", "BiasAdd", "MirrorPad", "Pad", "PadV2", "Relu", "Tanh", "Mean",
        "SquaredDifference", "Rsqrt", "SpaceToDepth", "DepthToSpace", "Einsum",
        # arithmetic and shapes
        "AddV2", "Add", "AddN", "Sub", "Mul", "RealDiv", "Neg", "FloorDiv", "FloorMod", "Maximum", "Minimum",
        "Round", "Cast", "ClipByValue", "Square", "Sqrt", "Shape", "Reshape", "Squeeze", "ExpandDims", "Pack",
        "StridedSlice", "Slice", "ConcatV2", "Transpose", "Fill", "Range",
    }
)  # fmt: skip
# The SavedModel format's own checkpoint saver (saver_def): only where nothing but it reaches.
SAVER = frozenset(
    {
        "SaveV2", "RestoreV2", "MergeV2Checkpoints", "ShardedFilename", "StringJoin", "StaticRegexFullMatch",
        "Select", "DisableCopyOnRead", "AssignVariableOp",
    }
)  # fmt: skip
# What the ops most worth naming do, for the message.
DOES = {
    "WriteFile": "writes a file",
    "ReadFile": "reads a file",
    "MatchingFiles": "lists files",
    "PyFunc": "calls Python code",
    "PyFuncStateless": "calls Python code",
    "EagerPyFunc": "calls Python code",
    "SaveV2": "writes checkpoint files",
    "Save": "writes checkpoint files",
    "SaveSlices": "writes checkpoint files",
    "RestoreV2": "reads checkpoint files",
    "Restore": "reads checkpoint files",
    "RestoreSlice": "reads checkpoint files",
    "MergeV2Checkpoints": "moves and deletes files",
    "PrintV2": "prints, also into files",
    "ImmutableConst": "maps a file into memory",
    "TFRecordDataset": "reads files",
    "FixedLengthRecordDataset": "reads files",
    "TextLineDataset": "reads files",
    "CreateSummaryFileWriter": "writes files",
    "WriteSummary": "writes files",
}
REEXPORT = "re-export it with `tfcyclegan export`"
TRUST = "pass --trust-model to run it anyway, if you trust where it came from"


def _called(attrs, library):
    """Names of library functions an attribute map refers to (func attrs, lists of them, nested)."""
    found = []
    for value in attrs.values():
        funcs = [value.func] if value.HasField("func") else list(value.list.func)
        for func in funcs:
            if func.name in library:
                found.append(func.name)
            found += _called(func.attr, library)
    return found


def _calls(node, library):
    """The library functions a node calls: by its op name (a function used as an op) or attributes."""
    return ([node.op] if node.op in library else []) + _called(node.attr, library)


def _closure(roots, library):
    """Every library function reachable from the function names `roots`."""
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in library[name].node_def:
            todo += _calls(node, library)
    return seen


def _saver_nodes(graph, saver_def):
    """The main graph's nodes the saver's save and restore ops depend on."""
    by_name = {node.name: node for node in graph.node}
    todo = [name.split(":")[0] for name in (saver_def.save_tensor_name, saver_def.restore_op_name) if name]
    seen = set()
    while todo:
        name = todo.pop().lstrip("^").split(":")[0]
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        todo += list(by_name[name].input)
    return seen


def _object_graph_functions(object_graph, library):
    """The functions the object graph makes callable or runs while loading."""
    names = set(object_graph.concrete_functions)
    for node in object_graph.nodes:
        kind = node.WhichOneof("kind")
        if kind == "function":
            names.update(node.function.concrete_functions)
        elif kind == "bare_concrete_function":
            names.add(node.bare_concrete_function.concrete_function_name)
    return {name for name in names if name in library}


def _refuse(path, op, where):
    does = DOES.get(op, "is not an op of an image translator")
    raise UserError(
        f"SavedModel {path} would run the op {op} ({does}) in {where}; it was not loaded: tfcyclegan's "
        f"SavedModels hold only the ops of a translator; {TRUST}"
    )


def check_savedmodel(path):
    """UserError naming the first op of SavedModel folder `path` outside ALLOWED (see the module's docstring)."""
    from tensorflow.python.saved_model import loader_impl

    path = Path(path)
    for name in (SAVEDMODEL_FILE, SAVEDMODEL_TEXT_FILE):
        file = path / name
        if os.path.lexists(file) and not file.is_file():  # the parser would block on a named pipe
            kind = fsutil.kind_of(file.stat().st_mode) if file.exists() else "a broken link"
            raise UserError(f"SavedModel {path}: {name} is not a regular file ({kind}); {REEXPORT}")
    try:
        # The parser tf.saved_model.load uses, so that what is checked is what would load.
        saved_model = loader_impl.parse_saved_model(str(path))
    except (OSError, ValueError) as error:
        raise UserError(f"cannot load SavedModel {path}: {str(error).splitlines()[0][:200]}; {REEXPORT}") from None
    graphs = saved_model.meta_graphs
    if len(graphs) != 1 or not graphs[0].HasField("object_graph_def"):
        raise UserError(
            f"SavedModel {path} is a TensorFlow 1 SavedModel ({len(graphs)} graphs, no object graph), whose loading "
            f"runs its own ops; tfcyclegan export never writes one; {REEXPORT}, or {TRUST}"
        )
    graph = graphs[0].graph_def
    library = {function.signature.name: function for function in graph.library.function}
    saver = _saver_nodes(graph, graphs[0].saver_def)
    main_calls = [name for node in graph.node if node.name not in saver for name in _calls(node, library)]
    saver_calls = [name for node in graph.node if node.name in saver for name in _calls(node, library)]
    saver_only = _closure(saver_calls, library)
    strict = _closure(
        main_calls
        + sorted(_object_graph_functions(graphs[0].object_graph_def, library))
        + [name for name in library if name not in saver_only],
        library,
    )
    for node in graph.node:
        allowed = ALLOWED | SAVER if node.name in saver else ALLOWED
        if node.op not in library and node.op not in allowed:
            _refuse(path, node.op, f"its graph (node {node.name})")
    for name in sorted(library):
        allowed = ALLOWED if name in strict else ALLOWED | SAVER
        for node in library[name].node_def:
            if node.op not in library and node.op not in allowed:
                _refuse(path, node.op, f"function {name}")
