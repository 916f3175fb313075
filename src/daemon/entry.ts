/** Process entry of cowbufd (bin/cowbufd.js runs the compiled copy; the test bed runs this one with tsx). */
import { main } from './main.js';

process.exitCode = await main(process.argv);
