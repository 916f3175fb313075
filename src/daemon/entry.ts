/** Process entry of cowbufd (bin/cowbufd.js runs the compiled copy; the test bed runs this one with tsx). */
import { main } from './main.js';

// An explicit exit: the guests' QEMUs outlive the daemon on purpose, and their monitor sockets and
// process handles would otherwise keep it alive once everything it owns is closed and journaled.
process.exit(await main(process.argv));
