/**
 * `deno run -A scripts/rewrite.ts IN OUT [--form fast|trap] [--privileged] [--allow-stripped]
 * [--json] [--companion ELF] [--bitness START-END:BITS]...`: statically rewrites the kernel image IN into
 * OUT and OUT.ring3.json (its side table), then prints the report (or, with --json, the
 * summary as JSON). Exits 1 with the error message when IN cannot be rewritten (nothing is
 * written then), 2 on bad usage.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ImageFormatError } from "../runtime/boot/image_error.ts";
import {
  type BitnessRange,
  formatReport,
  RewriteError,
  rewriteFile,
  SIDECAR_SUFFIX,
} from "../runtime/rewrite/mod.ts";

const USAGE = "usage: rewrite.ts IN OUT [--form fast|trap] [--privileged] [--allow-stripped] " +
  "[--json] [--companion ELF] [--bitness START-END:BITS]...\n" +
  "  --form F          fast (default, as boot() does): cli/sti/pushf/popf jump into\n" +
  "                    trampolines where the bytes allow; trap: int3 at every site\n" +
  "  --privileged      also patch privileged instructions (they trap anyway)\n" +
  "  --allow-stripped  rewrite an image without symbols, section by section\n" +
  "  --json            print the summary as JSON instead of the report\n" +
  "  --companion ELF   the ELF a flat a.out-kludge IN was made from\n" +
  "  --bitness R       decode vaddr range R (e.g. 0x100200-0x100400:64) in another mode";

let parsed;
try {
  parsed = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      form: { type: "string" },
      privileged: { type: "boolean" },
      "allow-stripped": { type: "boolean" },
      json: { type: "boolean" },
      companion: { type: "string" },
      bitness: { type: "string", multiple: true },
      help: { type: "boolean", short: "h" },
    },
  });
} catch (e) {
  console.error(`${(e as Error).message}\n${USAGE}`);
  Deno.exit(2);
}
const { positionals, values } = parsed;
if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}
if (positionals.length !== 2) {
  console.error(USAGE);
  Deno.exit(2);
}

const bitness: BitnessRange[] = [];
for (const spec of values.bitness ?? []) {
  const m = /^(0x[0-9a-f]+|\d+)-(0x[0-9a-f]+|\d+):(16|32|64)$/i.exec(spec);
  if (m === null) {
    console.error(`bad --bitness ${spec}: expected START-END:BITS, e.g. 0x100200-0x100400:64`);
    Deno.exit(2);
  }
  bitness.push({ start: Number(m[1]), end: Number(m[2]), bits: Number(m[3]) as 16 | 32 | 64 });
}

const form = values.form ?? "fast";
if (form !== "fast" && form !== "trap") {
  console.error(`bad --form ${form}: expected fast or trap\n${USAGE}`);
  Deno.exit(2);
}

const [input, output] = positionals;
try {
  const { summary, sideTable } = await rewriteFile(input, output, {
    form,
    privileged: values.privileged ?? false,
    allowStripped: values["allow-stripped"] ?? false,
    bitness,
    ...(values.companion === undefined ? {} : { companionPath: values.companion }),
  });
  if (values.json) {
    console.log(
      JSON.stringify({ input, output, sidecar: output + SIDECAR_SUFFIX, summary }, null, 2),
    );
  } else {
    console.log(
      `${input} -> ${output} (+ ${SIDECAR_SUFFIX}), image sha256 ${sideTable.image.sha256}`,
    );
    console.log(formatReport(summary).trimEnd());
    for (const f of sideTable.fast?.fallbacks ?? []) {
      console.log(
        `fast form fallback 0x${f.vaddr.toString(16)} ${f.text}: ${f.reason}: ${f.detail}`,
      );
    }
  }
} catch (e) {
  if (
    e instanceof RewriteError || e instanceof ImageFormatError || e instanceof Deno.errors.NotFound
  ) {
    console.error(`rewrite: ${input}: ${(e as Error).message}`);
    Deno.exit(1);
  }
  throw e;
}
