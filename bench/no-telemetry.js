// Preloaded into Artillery (node --require) by bench/run.sh: replaces the
// posthog-node telemetry client with a no-op so that the benchmark sends no
// traffic off this machine (Artillery 2.0.21 sends a ping even with
// ARTILLERY_DISABLE_TELEMETRY set) and does not wait on DNS at exit.
'use strict';
const Module = require('module');
const origLoad = Module._load;
class NoPostHog {
  capture() {}
  shutdown() {}
  shutdownAsync() { return Promise.resolve(); }
}
Module._load = function load(request, parent, isMain) {
  if (request === 'posthog-node') return { PostHog: NoPostHog };
  return origLoad.apply(this, arguments);
};
