// Keyboard shortcuts of the reading page and the "?" sheet that lists them.
// The sheet is built from the same table the key handler uses, so the two never disagree.

export const SHORTCUTS = [
  { keys: ['ArrowUp', 'ArrowLeft'], label: '↑ / ←', action: 'previousSlice', help: 'Previous slice' },
  { keys: ['ArrowDown', 'ArrowRight'], label: '↓ / →', action: 'nextSlice', help: 'Next slice' },
  { keys: ['PageUp'], label: 'Page Up', action: 'back10', help: '10 slices back' },
  { keys: ['PageDown'], label: 'Page Down', action: 'forward10', help: '10 slices forward' },
  { keys: ['Home'], label: 'Home / End', action: 'firstSlice', help: 'First / last slice' },
  { keys: ['End'], label: null, action: 'lastSlice' },
  { keys: ['l'], label: 'L', action: 'mode:long_axis', help: 'RECIST long axis (line)' },
  { keys: ['b'], label: 'B', action: 'mode:bidirectional', help: 'Bidirectional (long + short axis)' },
  { keys: ['m'], label: 'M', action: 'mode:brush', help: 'Mask brush' },
  { keys: ['e'], label: 'E', action: 'mode:eraser', help: 'Mask eraser' },
  { keys: ['a'], label: 'A', action: 'proposeMask', help: "Mask of the lesion from its line (then correct it with brush and eraser)" },
  { keys: ['g'], label: 'G', action: 'repropagate', help: "Propagate the lesion's mask again from this slice" },
  { keys: ['t'], label: 'T', action: 'mode:tap', help: 'Tap a lesion for its mask and axes' },
  { keys: ['['], label: '[ / ]', action: 'brushSmaller', help: 'Smaller / bigger brush' },
  { keys: [']'], label: null, action: 'brushBigger' },
  { keys: ['w'], label: 'W', action: 'mode:window', help: 'Window/level by dragging (right button always)' },
  { keys: ['p'], label: 'P', action: 'mode:pan', help: 'Pan (middle button always)' },
  { keys: ['z'], label: 'Z', action: 'mode:zoom', help: 'Zoom by dragging (Ctrl + wheel always)' },
  { keys: ['s'], label: 'S', action: 'mode:scroll', help: 'Scroll slices by dragging (wheel always)' },
  { keys: ['1', '2', '3', '4', '5', '6'], label: '1 – 6', action: 'preset', help: 'Window presets in the order shown' },
  // Handled by the question under the keyboard (questionForm.js), so nothing is bound here.
  { keys: [], label: '1 – 9 on a question', action: 'answer', help: 'Pick its option (Likert: the value; yes/no: 1 yes, 2 no)' },
  { keys: ['i'], label: 'I', action: 'invert', help: 'Invert' },
  { keys: ['r'], label: 'R', action: 'reset', help: 'Reset window, zoom and pan' },
  { keys: ['+', '='], label: '+ / −', action: 'zoomIn', help: 'Zoom in / out' },
  { keys: ['-'], label: null, action: 'zoomOut' },
  { keys: ['n'], label: 'N', action: 'newLesion', help: 'Start a new lesion' },
  { keys: ['Delete', 'Backspace'], label: 'Delete', action: 'deleteSelected', help: 'Delete the selected measurement' },
  { keys: ['ctrl+z'], label: 'Ctrl + Z', action: 'undo', help: 'Undo' },
  { keys: ['ctrl+y', 'ctrl+shift+z'], label: 'Ctrl + Y', action: 'redo', help: 'Redo' },
  { keys: ['ctrl+Enter'], label: 'Ctrl + Enter', action: 'submit', help: 'Submit the read' },
  { keys: ['?'], label: '?', action: 'help', help: 'This sheet' },
];

function keyName(event) {
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  if (event.ctrlKey || event.metaKey) return `ctrl+${event.shiftKey ? 'shift+' : ''}${key}`;
  return key;
}

const OPTION_KEYS = new Set(['ArrowUp', 'ArrowDown', 'ArrowLeft', 'ArrowRight', ' ', 'Home', 'End']);

/**
 * Call handlers[action](event, key) for shortcut keys typed outside text fields.
 * handlers.questionKey(event) goes first and returns true when a focused question used the key.
 */
export function bindShortcuts(handlers) {
  const byKey = new Map();
  for (const shortcut of SHORTCUTS) for (const key of shortcut.keys) byKey.set(key, shortcut.action);
  document.addEventListener('keydown', (event) => {
    const target = event.target;
    const typing = target.closest?.('input[type=text], input[type=number], input:not([type]), textarea, select, [contenteditable]');
    const name = keyName(event);
    if (typing && name !== 'ctrl+Enter') return;
    if (handlers.questionKey?.(event)) return;
    // Arrows and space on a question's radio buttons move between and pick its options, as usual.
    if (target.closest?.('[data-question]') && OPTION_KEYS.has(event.key)) return;
    if (event.key === 'Escape') {
      handlers.escape?.(event);
      return;
    }
    const action = byKey.get(name);
    if (!action) return;
    const [kind, argument] = action.split(':');
    const handler = handlers[kind];
    if (!handler) return;
    event.preventDefault();
    handler(argument ?? event.key, event);
  });
}

/** Fill the <dialog> with the shortcut table. */
export function renderShortcutSheet(dialog) {
  const rows = SHORTCUTS.filter((s) => s.label)
    .map((s) => `<tr><th scope="row"><kbd>${s.label}</kbd></th><td>${s.help}</td></tr>`)
    .join('');
  dialog.querySelector('.shortcut-table tbody').innerHTML = rows;
}
