#!/usr/bin/env node
// Reference runtime for TF.js graph models: runs a model.json + .bin from local files with npm
// @tensorflow/tfjs on its pure-JavaScript CPU backend (no native tfjs-node), so pose_ros can prove that
// its torch import computes the same numbers as the original runtime.
//
// Usage (NODE_PATH must point at a node_modules holding @tensorflow/tfjs):
//   node tfjs_reference.cjs --model DIR/NAME.json --dtype int32 --shape 1,384,512,3 \
//        --inputs a.raw[,b.raw...] --output out.json [--outputs NAME[,NAME...]]
// Each .raw file holds one input tensor, little-endian, C order (NHWC), of the given dtype and shape.
// out.json: [{"<output name>": {"shape": [...], "data": [...]}, ...}, ...] — one object per input file,
// plus "seconds" (model execution time for that input).
"use strict";

const fs = require("fs");
const path = require("path");

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
      throw new Error(`bad argument list near '${argv[i]}' (expected --key value pairs)`);
    }
    args[argv[i].slice(2)] = argv[i + 1];
  }
  for (const key of ["model", "dtype", "shape", "inputs", "output"]) {
    if (!(key in args)) throw new Error(`missing --${key}`);
  }
  return args;
}

function loadWeightData(modelDir, manifest) {
  const buffers = [];
  for (const group of manifest) {
    for (const file of group.paths) buffers.push(fs.readFileSync(path.join(modelDir, file)));
  }
  const all = Buffer.concat(buffers);
  return all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
}

async function loadModel(tf, modelPath) {
  const json = JSON.parse(fs.readFileSync(modelPath, "utf8"));
  const weightSpecs = json.weightsManifest.flatMap((group) => group.weights);
  const weightData = loadWeightData(path.dirname(modelPath), json.weightsManifest);
  const handler = tf.io.fromMemory({
    modelTopology: json.modelTopology,
    weightSpecs,
    weightData,
    format: json.format,
    generatedBy: json.generatedBy,
    convertedBy: json.convertedBy,
    signature: json.signature,
  });
  return tf.loadGraphModel(handler);
}

function readInput(tf, file, dtype, shape) {
  const bytes = fs.readFileSync(file);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const values = dtype === "int32" ? new Int32Array(buffer) : new Float32Array(buffer);
  const expected = shape.reduce((a, b) => a * b, 1);
  if (values.length !== expected) {
    throw new Error(`${file}: ${values.length} ${dtype} values, shape ${shape} needs ${expected}`);
  }
  return tf.tensor(values, shape, dtype);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const tf = require("@tensorflow/tfjs");
  await tf.setBackend("cpu");
  await tf.ready();
  const model = await loadModel(tf, args.model);
  const shape = args.shape.split(",").map(Number);
  const outputNames = args.outputs ? args.outputs.split(",") : model.outputs.map((o) => o.name);
  const results = [];
  for (const file of args.inputs.split(",")) {
    const input = readInput(tf, file, args.dtype, shape);
    const start = process.hrtime.bigint();
    let outputs = await model.executeAsync(input, outputNames);
    if (!Array.isArray(outputs)) outputs = [outputs];
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const record = { seconds };
    for (let i = 0; i < outputNames.length; i++) {
      record[outputNames[i]] = { shape: outputs[i].shape, data: Array.from(await outputs[i].data()) };
    }
    tf.dispose([input, ...outputs]);
    results.push(record);
  }
  fs.writeFileSync(args.output, JSON.stringify({ backend: tf.getBackend(), version: tf.version.tfjs, results }));
}

main().catch((error) => {
  console.error(`tfjs_reference: ${error.stack || error}`);
  process.exit(1);
});
