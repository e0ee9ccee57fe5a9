// Series preview: scroll through the rendered slices with the slider, the wheel or the arrow keys.
const image = document.getElementById('slice-image');
const slider = document.getElementById('slice');
const frames = JSON.parse(document.getElementById('frames')?.textContent || '[]');
const cache = new Map();

function preload(index) {
  if (index < 0 || index >= frames.length || cache.has(index)) return;
  const img = new Image();
  img.src = frames[index].url;
  cache.set(index, img);
}

function show(index) {
  const i = Math.max(0, Math.min(frames.length - 1, index));
  slider.value = String(i + 1);
  image.src = frames[i].url;
  image.alt = `Slice ${i + 1} of ${frames.length}`;
  document.getElementById('slice-number').textContent = `${i + 1} / ${frames.length}`;
  preload(i + 1);
  preload(i - 1);
}

if (image && frames.length) {
  slider.addEventListener('input', () => show(Number(slider.value) - 1));
  image.addEventListener('wheel', (event) => { event.preventDefault(); show(Number(slider.value) - 1 + Math.sign(event.deltaY)); }, { passive: false });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'ArrowDown' || event.key === 'ArrowRight') show(Number(slider.value));
    if (event.key === 'ArrowUp' || event.key === 'ArrowLeft') show(Number(slider.value) - 2);
  });
  preload(1);
}
