"""Run a frozen TensorFlow GraphDef on inputs, under a Python that has tensorflow (the reference venv).

    python tf_graph_reference.py GRAPH.pb INPUTS.npz OUTPUTS.npz INPUT_NODE OUTPUT_TENSOR [OUTPUT_TENSOR ...]

INPUTS.npz holds NHWC float32 arrays; OUTPUTS.npz gets, per input key, one array per output tensor under
"<key>/<i>". Test helper only (runs outside the product's venv); single-threaded for repeatable numbers.
"""

import sys

import numpy as np
import tensorflow as tf


def main(graph_path: str, inputs_path: str, outputs_path: str, input_node: str, *output_tensors: str) -> None:
    graph_def = tf.compat.v1.GraphDef()
    with open(graph_path, "rb") as handle:
        graph_def.ParseFromString(handle.read())
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
    fetches = [graph.get_tensor_by_name(name) for name in output_tensors]
    feed = graph.get_tensor_by_name(f"{input_node}:0")
    results = {}
    with tf.compat.v1.Session(graph=graph, config=config) as session:
        for key, value in np.load(inputs_path).items():
            for i, out in enumerate(session.run(fetches, {feed: value.astype(np.float32)})):
                results[f"{key}/{i}"] = out
    np.savez(outputs_path, **results)
    print(f"tensorflow {tf.__version__}: {len(results)} outputs written to {outputs_path}")


if __name__ == "__main__":
    main(*sys.argv[1:])
