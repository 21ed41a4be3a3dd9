// Bundle src/ into the single checked-in file static/widget.js (CSS is inlined as text).
import * as esbuild from "esbuild";

const watch = process.argv.includes("--watch");

const options = {
  entryPoints: ["src/index.js"],
  outfile: "static/widget.js",
  bundle: true,
  format: "iife",
  target: ["es2019", "chrome90", "firefox88", "safari14"],
  minify: !watch,
  sourcemap: false,
  legalComments: "eof",
  loader: { ".css": "text" },
  banner: {
    js: "/* Handoff chat widget: Rasa bot + Twilio Flex agent handoff. Built from bot/northwind/widget/src; do not edit. */",
  },
  logLevel: "info",
};

if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  await esbuild.build(options);
}
