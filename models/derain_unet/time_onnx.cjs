// Times one 548 x 730 (0.40 MP) call of an ONNX derainer with onnxruntime-node: median of 5 after a warm-up.
const ort = require("onnxruntime-node");
(async () => {
  const [file, threads] = [process.argv[2], Number(process.argv[3] || 1)];
  const s = await ort.InferenceSession.create(file, { intraOpNumThreads: threads, interOpNumThreads: 1 });
  const h = 548,
    w = 730;
  const x = new ort.Tensor(
    "float32",
    Float32Array.from({ length: 3 * h * w }, () => Math.random()),
    [1, 3, h, w],
  );
  const feeds = { image: x };
  if (s.inputNames.includes("thumb"))
    feeds.thumb = new ort.Tensor("float32", new Float32Array(3 * 128 * 128).fill(0.5), [1, 3, 128, 128]);
  await s.run(feeds);
  const ms = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    await s.run(feeds);
    ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  console.log(JSON.stringify({ file, threads, median_ms: Math.round(ms[2]), all: ms.map(Math.round) }));
})();
