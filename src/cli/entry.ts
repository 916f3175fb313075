/** Process entry of the CLI (bin/cowbuf.js runs the compiled copy; tests run this one with tsx). */
import { main } from './main.js';

process.exitCode = await main(process.argv);
