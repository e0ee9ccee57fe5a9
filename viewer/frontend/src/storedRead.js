// A stored read document (an answer key being edited) turned back into what the page draws:
// Length / Bidirectional annotation records in patient space, mask slices per lesion, flags,
// comment and answers. The inverse of readDocument.js; pure apart from the lookups passed in.
import { imageToPatient } from './geometry.js';

const EMPTY_BOX = { topLeft: [0, 0, 0], topRight: [0, 0, 0], bottomLeft: [0, 0, 0], bottomRight: [0, 0, 0] };

/**
 * Return {annotations, masks, flags, comment, answers} for a read document.
 * imageIdOf(sopInstanceUid, frame) -> imageId or undefined; planeOf(imageId) -> image plane;
 * view: {FrameOfReferenceUID, viewPlaneNormal, viewUp} of the viewport; newUid() -> a fresh UID.
 * Lines on images outside the case are left out (the server only stores lines on its images).
 */
export function drawingFromDocument(document_, { imageIdOf, planeOf, view, newUid }) {
  const annotations = [];
  const masks = [];
  const lesionAnswers = {};
  for (const lesion of document_.lesions || []) {
    const imageId = lesion.long_axis && imageIdOf(lesion.long_axis.sop_instance_uid, lesion.long_axis.frame);
    if (imageId) {
      const plane = planeOf(imageId);
      const world = (axis) => [imageToPatient(axis.start, plane), imageToPatient(axis.end, plane)];
      const bidirectional = Boolean(lesion.short_axis);
      annotations.push({
        annotationUID: newUid(),
        metadata: { toolName: bidirectional ? 'Bidirectional' : 'Length', referencedImageId: imageId, ...view },
        data: {
          handles: {
            points: bidirectional ? [...world(lesion.long_axis), ...world(lesion.short_axis)] : world(lesion.long_axis),
            textBox: { hasMoved: false, worldPosition: [0, 0, 0], worldBoundingBox: EMPTY_BOX },
          },
          label: `Lesion ${lesion.lesion}`,
          readerboardLesion: lesion.lesion,
        },
      });
    }
    for (const slice of lesion.mask?.slices || []) {
      const sliceImageId = imageIdOf(slice.sop_instance_uid, slice.frame);
      if (sliceImageId) masks.push({ imageId: sliceImageId, lesion: lesion.lesion, counts: slice.counts });
    }
    if (lesion.answers) lesionAnswers[lesion.lesion] = lesion.answers;
  }
  return {
    annotations,
    masks,
    flags: document_.flags || {},
    comment: document_.comment || '',
    answers: { case: document_.answers || {}, lesions: lesionAnswers },
  };
}
