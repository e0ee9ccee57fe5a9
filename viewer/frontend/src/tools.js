// The tool group of the reading page: which Cornerstone tool the primary button (or one finger)
// drives, the fixed secondary bindings, brush size, undo/redo and deleting annotations.
// Bindings: wheel = scroll slices, right drag = window/level, middle drag = pan, Ctrl+wheel = zoom;
// touch: one finger = the chosen tool, two fingers = scroll slices, three fingers = pan.
import { utilities as csUtils } from '@cornerstonejs/core';
import {
  addTool,
  annotation,
  BidirectionalTool,
  BrushTool,
  Enums as ToolEnums,
  LengthTool,
  PanTool,
  StackScrollTool,
  ToolGroupManager,
  utilities as toolUtilities,
  WindowLevelTool,
  ZoomTool,
} from '@cornerstonejs/tools';
import { RENDERING_ENGINE_ID, VIEWPORT_ID } from './viewer.js';

const { MouseBindings } = ToolEnums;
export const TOOL_GROUP_ID = 'readerboard-tools';
const PRIMARY = [{ mouseButton: MouseBindings.Primary }, { numTouchPoints: 1 }];

/** The modes a reader picks in the toolbar, mapped to Cornerstone tool (instance) names. */
export const MODES = {
  long_axis: LengthTool.toolName,
  bidirectional: BidirectionalTool.toolName,
  brush: 'LesionBrush',
  eraser: 'LesionEraser',
  window: WindowLevelTool.toolName,
  pan: PanTool.toolName,
  zoom: ZoomTool.toolName,
  scroll: StackScrollTool.toolName,
  // Tap mode: one finger pans; a tap that does not move asks for the mask under it (main.js).
  tap: PanTool.toolName,
};
export const MEASUREMENT_TOOLS = [LengthTool.toolName, BidirectionalTool.toolName];

let registered = false;

export class ReadingTools {
  constructor() {
    if (!registered) {
      for (const tool of [LengthTool, BidirectionalTool, BrushTool, WindowLevelTool, PanTool, ZoomTool, StackScrollTool]) {
        addTool(tool);
      }
      registered = true;
    }
    ToolGroupManager.destroyToolGroup(TOOL_GROUP_ID);
    const group = ToolGroupManager.createToolGroup(TOOL_GROUP_ID);
    group.addTool(LengthTool.toolName);
    group.addTool(BidirectionalTool.toolName);
    group.addTool(WindowLevelTool.toolName);
    group.addTool(PanTool.toolName);
    group.addTool(ZoomTool.toolName);
    group.addTool(StackScrollTool.toolName, { loop: false });
    group.addToolInstance('LesionBrush', BrushTool.toolName, { activeStrategy: 'FILL_INSIDE_CIRCLE' });
    group.addToolInstance('LesionEraser', BrushTool.toolName, { activeStrategy: 'ERASE_INSIDE_CIRCLE' });
    group.addViewport(VIEWPORT_ID, RENDERING_ENGINE_ID);
    group.setToolActive(StackScrollTool.toolName, {
      bindings: [{ mouseButton: MouseBindings.Wheel }, { numTouchPoints: 2 }],
    });
    group.setToolActive(WindowLevelTool.toolName, { bindings: [{ mouseButton: MouseBindings.Secondary }] });
    group.setToolActive(PanTool.toolName, {
      bindings: [{ mouseButton: MouseBindings.Auxiliary }, { numTouchPoints: 3 }],
    });
    group.setToolActive(ZoomTool.toolName, {
      bindings: [{ mouseButton: MouseBindings.Wheel, modifierKey: ToolEnums.KeyboardBindings.Ctrl }],
    });
    group.setToolPassive(LengthTool.toolName);
    group.setToolPassive(BidirectionalTool.toolName);
    group.setToolPassive('LesionBrush');
    group.setToolPassive('LesionEraser');
    this.group = group;
    this.mode = null;
  }

  /** Give the primary button and one-finger touch to `mode` (a key of MODES). */
  setMode(mode) {
    if (!(mode in MODES)) throw new Error(`unknown tool mode ${mode}`);
    if (this.mode) this.group.setToolPassive(MODES[this.mode], { removeAllBindings: PRIMARY });
    this.group.setToolActive(MODES[mode], { bindings: PRIMARY });
    this.mode = mode;
  }

  /** Give another viewport of the page the same tools (follow-up reading's second viewport). */
  addViewport(viewportId) {
    this.group.addViewport(viewportId, RENDERING_ENGINE_ID);
  }

  removeViewport(viewportId) {
    this.group.removeViewports(RENDERING_ENGINE_ID, viewportId);
  }

  /** Brush and eraser radius in screen pixels. */
  setBrushSize(radius) {
    toolUtilities.segmentation.setBrushSizeForToolGroup(TOOL_GROUP_ID, radius);
  }

  undo() {
    csUtils.HistoryMemo.DefaultHistoryMemo.undo();
  }

  redo() {
    csUtils.HistoryMemo.DefaultHistoryMemo.redo();
  }

  /** Put a page action on the undo stack: memo.restoreMemo(true) undoes it, restoreMemo(false) does it again. */
  remember(memo) {
    csUtils.HistoryMemo.DefaultHistoryMemo.push(memo);
  }

  /** Remove the selected measurements; return how many were removed. */
  deleteSelected() {
    // Locked annotations (a follow-up read's baseline lesions) are shown, never deleted.
    const selected = (annotation.selection.getAnnotationsSelected() || []).filter(
      (item) => !annotation.locking.isAnnotationLocked(item.annotationUID),
    );
    for (const item of selected) annotation.state.removeAnnotation(item.annotationUID);
    return selected.length;
  }
}

/** All Length and Bidirectional annotations on the page. */
export function measurementAnnotations() {
  return annotation.state.getAllAnnotations().filter((item) => MEASUREMENT_TOOLS.includes(item.metadata?.toolName));
}
