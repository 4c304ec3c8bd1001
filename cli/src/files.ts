import { createHash } from "node:crypto";
import { createReadStream, existsSync, readdirSync, statSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";

/** Extensions taken from a folder; a file named on its own is sent whatever its name (the API sniffs the bytes). */
export const IMAGE_EXTENSIONS = new Set([".jpg", ".jpeg", ".png", ".webp", ".gif", ".tif", ".tiff", ".avif", ".heic", ".heif"]);

const MAGIC = /[*?[{]/;

/** A glob as a regular expression over `/`-separated paths: `**` any number of folders, `*` and `?` within one name, `{a,b}` alternatives, `[…]` a class. */
export function globRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*" && glob[i + 1] === "*") {
      const slash = glob[i + 2] === "/";
      re += slash ? "(?:[^/]*/)*" : ".*";
      i += slash ? 2 : 1;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "{") re += "(?:";
    else if (c === "}") re += ")";
    else if (c === "," && re.lastIndexOf("(?:") > re.lastIndexOf(")")) re += "|";
    else if (c === "[") {
      const end = glob.indexOf("]", i + 1);
      if (end < 0) re += "\\[";
      else {
        re += `[${glob
          .slice(i + 1, end)
          .replace(/^!/, "^")
          .replace(/\\/g, "\\\\")}]`;
        i = end;
      }
    } else re += c.replace(/[.+^$()|\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

function walk(dir: string, out: string[]): void {
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (entry.name.startsWith(".")) continue;
    const p = join(dir, entry.name);
    if (entry.isDirectory()) walk(p, out);
    else if (entry.isFile()) out.push(p);
  }
}

const isImageName = (p: string) => IMAGE_EXTENSIONS.has(p.slice(p.lastIndexOf(".")).toLowerCase());

/**
 * Files for the arguments, in order and without repeats: a file as is, a folder's image files (recursively), a
 * glob's matches. Throws for an argument that names nothing, so a typo is a usage error, not an empty batch.
 */
export function expandInputs(args: string[], cwd = process.cwd()): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  const add = (p: string) => {
    const abs = resolve(cwd, p);
    if (!seen.has(abs)) (seen.add(abs), out.push(abs));
  };
  for (const arg of args) {
    if (!MAGIC.test(arg)) {
      const abs = resolve(cwd, arg);
      if (!existsSync(abs)) throw new Error(`no such file or folder: ${arg}`);
      if (statSync(abs).isDirectory()) {
        const found: string[] = [];
        walk(abs, found);
        found.filter(isImageName).forEach(add);
      } else add(abs);
      continue;
    }
    const parts = arg.split(/[\\/]/);
    const fixed: string[] = [];
    while (parts.length > 1 && !MAGIC.test(parts[0]!)) fixed.push(parts.shift()!);
    const root = resolve(cwd, fixed.join("/") || ".");
    const re = globRegExp(parts.join("/"));
    const found: string[] = [];
    if (existsSync(root) && statSync(root).isDirectory()) walk(root, found);
    const matches = found.filter((p) => re.test(relative(root, p).split(sep).join("/")));
    if (matches.length === 0) throw new Error(`no files match ${arg}`);
    matches.forEach(add);
  }
  return out;
}

export function sha256File(path: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const h = createHash("sha256");
    createReadStream(path)
      .on("data", (c) => h.update(c))
      .on("error", reject)
      .on("end", () => resolvePromise(h.digest("hex")));
  });
}
