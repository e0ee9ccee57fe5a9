// Run-length coding of binary masks as docs/read-format.md defines it: counts over the row-major
// bitmap, starting with a run of zeros (possibly 0), alternating zeros and ones, summing to the
// pixel count. Pure functions, no Cornerstone: tested with node --test.

/** Return the run lengths of `value`-pixels versus all others in `pixels` (a typed array). */
export function encodeRuns(pixels, value = 1) {
  const counts = [];
  let current = 0; // 0 = counting "outside" pixels, 1 = counting pixels equal to value
  let run = 0;
  for (let i = 0; i < pixels.length; i += 1) {
    const bit = pixels[i] === value ? 1 : 0;
    if (bit === current) {
      run += 1;
    } else {
      counts.push(run);
      current = bit;
      run = 1;
    }
  }
  counts.push(run);
  return counts;
}

/** True when counts mark at least one pixel. */
export function hasForeground(counts) {
  for (let i = 1; i < counts.length; i += 2) if (counts[i] > 0) return true;
  return false;
}

/** Write `value` into `target` wherever the runs mark a pixel; return the number written. */
export function decodeRunsInto(counts, target, value = 1) {
  let position = 0;
  let written = 0;
  counts.forEach((run, index) => {
    if (index % 2 === 1) {
      target.fill(value, position, position + run);
      written += run;
    }
    position += run;
  });
  if (position !== target.length) {
    throw new RangeError(`runs cover ${position} pixels, the image has ${target.length}`);
  }
  return written;
}
