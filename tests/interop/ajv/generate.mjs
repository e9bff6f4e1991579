// Print the object-schema vectors: every case of cases.mjs validated by Ajv 8
// as the official server does it (router/route-builder.js validateObjectSchema):
//   new Ajv(); compile(schema); first error ->
//   400 {"error":"Schema validation failed: <message>","path":<instancePath split on "/">,"validator":<keyword>}
//   a compile (or validation) exception -> 500 {"error":"Internal schema validation error"}
//
//   node tests/interop/ajv/generate.mjs > tests/vectors/object-schema.json
import Ajv from "ajv";
import { cases } from "./cases.mjs";

export function officialAnswer(schema, data, ajv = new Ajv({ logger: false })) {
  try {
    const validate = ajv.compile(schema);
    const valid = validate(data);
    if (!valid && validate.errors && validate.errors.length > 0) {
      const err = validate.errors[0];
      return {
        status: 400,
        body: {
          error: `Schema validation failed: ${err.message}`,
          path: err.instancePath ? err.instancePath.split("/").filter(Boolean) : [],
          validator: err.keyword,
        },
      };
    }
    return { status: 200 };
  } catch {
    return { status: 500, body: { error: "Internal schema validation error" } };
  }
}

export function vectors() {
  return cases.map(([name, schema, data]) => {
    // One instance per schema, as the official server keeps one for all pushes.
    const ajv = new Ajv({ logger: false });
    return { name, schema, results: data.map((d) => ({ data: d, ...officialAnswer(schema, d, ajv) })) };
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(JSON.stringify({ generator: "tests/interop/ajv/generate.mjs", ajv: "8.17.1", cases: vectors() }, null, 1) + "\n");
}
