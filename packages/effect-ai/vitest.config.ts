import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "effect-ai",
    include: ["test/**/*.test.ts"]
  }
})
