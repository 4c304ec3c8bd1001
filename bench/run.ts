import { mkdirSync, writeFileSync } from "node:fs";
import { runCliBench } from "./cli.ts";
import { runDerainBench } from "./derain.ts";
import { runFuzzBench } from "./fuzz.ts";
import { runIdentityBench } from "./identity.ts";
import { runLowlightBench } from "./lowlight.ts";
import { runSpineBench } from "./spine.ts";
import { runStormBench } from "./storm.ts";
import { runWatermarkBench } from "./watermark.ts";

// `npm run bench`: each benchmark writes bench/results/<name>.json. Timings compare only within one run on one machine.
const only = process.argv.slice(2);
const benches: Record<string, () => Promise<unknown>> = {
  spine: runSpineBench,
  watermark: runWatermarkBench,
  lowlight: runLowlightBench,
  derain: runDerainBench,
  identity: runIdentityBench,
  storm: runStormBench,
  fuzz: runFuzzBench,
  cli: runCliBench,
};

mkdirSync(new URL("results/", import.meta.url), { recursive: true });
for (const [name, run] of Object.entries(benches)) {
  if (only.length && !only.includes(name)) continue;
  console.log(`bench ${name} ...`);
  const result = { bench: name, measured_at: new Date().toISOString(), ...((await run()) as object) };
  writeFileSync(new URL(`results/${name}.json`, import.meta.url), JSON.stringify(result, null, 2) + "\n");
  console.log(JSON.stringify(result, null, 2));
}
