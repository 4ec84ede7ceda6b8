// Lets Node import app.js in the tests: `host:plugin/host@0.2.0` (the
// host's functions, which only exist inside the host) resolves to
// test/host.js, a stand-in the tests control (see test/hooks.js).
import { register } from 'node:module';

register('./hooks.js', import.meta.url);
