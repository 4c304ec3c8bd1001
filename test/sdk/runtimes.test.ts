import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { afterAll, describe, expect, inject, it } from "vitest";

const SDK_ENTRY = resolve("sdk/src/index.ts");
const dir = mkdtempSync(join(tmpdir(), "vigil-sdk-runtimes-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the SDK outside Node", () => {
  it("bundles for the browser with esbuild: no Node built-in reaches the bundle", async () => {
    const out = await build({
      entryPoints: [SDK_ENTRY],
      bundle: true,
      platform: "browser",
      format: "esm",
      minify: true,
      write: false,
      metafile: true,
      logLevel: "silent",
    });
    const inputs = Object.keys(out.metafile.inputs);
    expect(inputs.filter((p) => p.startsWith("node:") || /(^|\/)node_modules\/@types\/node\//.test(p))).toEqual([]);
    const imports = Object.values(out.metafile.outputs).flatMap((o) => o.imports.map((i) => i.path));
    expect(imports).toEqual([]); // fully self-contained: nothing left for a bundler or the browser to resolve
    const text = out.outputFiles[0]!.text;
    expect(text.match(/\brequire\(|process\.env|\bBuffer\.(from|alloc|isBuffer)|\b__dirname\b/g)).toBeNull();
    // About 17 KB minified, standardwebhooks and its two small dependencies included (measured with this build).
    expect(text.length).toBeLessThan(40_000);
  });

  it("runs in workerd: a Worker bundling the SDK calls the real API (inspect, a typed 404)", async () => {
    const stack = inject("sdkStack");
    const entry = join(dir, "worker.ts");
    writeFileSync(
      entry,
      `import { Vigil, VigilError } from ${JSON.stringify(SDK_ENTRY)};
export default {
  async fetch(req: Request, env: { API_URL: string; API_KEY: string }): Promise<Response> {
    const vigil = new Vigil({ baseUrl: env.API_URL, apiKey: env.API_KEY });
    const job = await vigil.inspect(new Uint8Array(await req.arrayBuffer()));
    const missing = await vigil.jobs.get("job_missing").catch((e: unknown) => e);
    return Response.json({
      runtime: navigator.userAgent,
      job,
      missing: missing instanceof VigilError ? { code: missing.code, status: missing.status } : String(missing),
    });
  },
};
`,
    );
    const out = await build({
      entryPoints: [entry],
      bundle: true,
      platform: "browser",
      conditions: ["workerd", "worker", "browser"],
      format: "esm",
      write: false,
      logLevel: "silent",
    });
    const mf = new Miniflare({
      modules: true,
      script: out.outputFiles[0]!.text,
      compatibilityDate: "2026-04-01",
      bindings: { API_URL: stack.url, API_KEY: stack.apiKey },
    });
    try {
      const res = await mf.dispatchFetch("http://worker.local/", {
        method: "POST",
        body: readFileSync("test/fixtures/photo.jpg"),
      });
      const body = (await res.json()) as {
        runtime: string;
        job: { status: string; output: { width: number } };
        missing: unknown;
      };
      expect(body.runtime).toBe("Cloudflare-Workers");
      expect(body.job.status).toBe("succeeded");
      expect(body.job.output.width).toBe(512);
      expect(body.missing).toEqual({ code: "job_not_found", status: 404 });
    } finally {
      await mf.dispose();
    }
  });
});
