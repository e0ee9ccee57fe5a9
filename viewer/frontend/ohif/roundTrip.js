// Loads Readerboard's exported SR and SEG files the way OHIF does, with @cornerstonejs/adapters, and
// prints what came back as JSON: per SR, each tool state turned into read-document lines by the viewer's
// own readDocument.js; per SEG, each segment's voxel count. Python checks the answer against the database
// (tests/annotations/test_export_ohif.py). Input: a JSON file naming the source images and the files:
//   {images: [{image_id, sop_instance_uid, frame, series_instance_uid, position, orientation, ...}],
//    sr: [path], seg: [{path, series_instance_uid}]}
//   node roundTrip.mjs job.json   ->   stdout: {"sr": {path: [tool state]}, "seg": {path: [segment]}}
import { readFileSync } from 'node:fs';
import { adaptersSEG, adaptersSR } from '@cornerstonejs/adapters';
import { metaData, utilities } from '@cornerstonejs/core';
import dcmjs from 'dcmjs';
import { measurementAxes } from '../src/readDocument.js';

const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));

// The metadata OHIF's image loader would give for each source image, from the image headers.
const modules = new Map();
function addImage(image) {
  const [rowCosines, columnCosines] = [image.orientation.slice(0, 3), image.orientation.slice(3, 6)];
  const [rowPixelSpacing, columnPixelSpacing] = image.pixel_spacing_mm;
  const common = { rows: image.rows, columns: image.columns };
  modules.set(image.image_id, {
    imagePlaneModule: {
      ...common,
      frameOfReferenceUID: image.frame_of_reference_uid,
      imageOrientationPatient: image.orientation,
      rowCosines,
      columnCosines,
      imagePositionPatient: image.position,
      pixelSpacing: image.pixel_spacing_mm,
      rowPixelSpacing,
      columnPixelSpacing,
    },
    imagePixelModule: {
      ...common,
      samplesPerPixel: 1,
      bitsAllocated: 16,
      bitsStored: 16,
      highBit: 15,
      pixelRepresentation: 1,
      photometricInterpretation: 'MONOCHROME2',
    },
    generalImageModule: { sopInstanceUID: image.sop_instance_uid, instanceNumber: image.index + 1 },
    generalSeriesModule: {
      seriesInstanceUID: image.series_instance_uid,
      studyInstanceUID: image.study_instance_uid,
      modality: image.modality,
    },
    sopCommonModule: { sopClassUID: image.sop_class_uid, sopInstanceUID: image.sop_instance_uid },
    frameNumber: image.frame,
    instance: {
      SOPClassUID: image.sop_class_uid,
      SOPInstanceUID: image.sop_instance_uid,
      SeriesInstanceUID: image.series_instance_uid,
      StudyInstanceUID: image.study_instance_uid,
      FrameOfReferenceUID: image.frame_of_reference_uid,
      Modality: image.modality,
      Rows: image.rows,
      Columns: image.columns,
      ImagePositionPatient: image.position,
      ImageOrientationPatient: image.orientation,
      PixelSpacing: image.pixel_spacing_mm,
      NumberOfFrames: image.number_of_frames,
    },
  });
}
const provider = {
  get: (type, imageId) => modules.get(imageId)?.[type],
  addCustomMetadata: (imageId, type, value) => {
    if (!modules.has(imageId)) modules.set(imageId, {});
    modules.get(imageId)[type] = value;
  },
};
metaData.addProvider((type, imageId) => provider.get(type, imageId), 10000);
// The adapters log every measurement at info level; keep stdout for the JSON answer.
utilities.logger?.adaptersLog?.setLevel?.('silent');

for (const image of job.images) addImage(image);
const sopFrameToImageId = Object.fromEntries(job.images.map((image) => [`${image.sop_instance_uid}:${image.frame}`, image.image_id]));
const frameOf = new Map(
  job.images.map((image) => [image.image_id, { sop_instance_uid: image.sop_instance_uid, frame: image.frame, rows: image.rows, columns: image.columns }]),
);
const planeOf = (imageId) => {
  const plane = provider.get('imagePlaneModule', imageId);
  return {
    imagePositionPatient: plane.imagePositionPatient,
    rowCosines: plane.rowCosines,
    columnCosines: plane.columnCosines,
    columnSpacingMm: plane.columnPixelSpacing,
    rowSpacingMm: plane.rowPixelSpacing,
    rows: plane.rows,
    columns: plane.columns,
  };
};

function readDataset(path) {
  const bytes = readFileSync(path);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const message = dcmjs.data.DicomMessage.readFile(buffer);
  const dataset = dcmjs.data.DicomMetaDictionary.naturalizeDataset(message.dict);
  dataset._meta = dcmjs.data.DicomMetaDictionary.namifyDataset(message.meta);
  return { buffer, dataset };
}

function srToolStates(path) {
  const { dataset } = readDataset(path);
  const byTool = adaptersSR.Cornerstone3D.MeasurementReport.generateToolState(dataset, sopFrameToImageId, metaData);
  const tools = [];
  for (const [toolType, states] of Object.entries(byTool)) {
    for (const state of states) {
      const annotation = state.annotation;
      const imageId = annotation.metadata.referencedImageId;
      tools.push({
        tool_type: toolType,
        tracking_uid: state.TrackingUniqueIdentifier,
        label: annotation.data.label ?? null,
        finding: state.finding?.CodeMeaning ?? null,
        sop_instance_uid: frameOf.get(imageId)?.sop_instance_uid ?? null,
        frame: frameOf.get(imageId)?.frame ?? null,
        stats: annotation.data.cachedStats?.[`imageId:${imageId}`] ?? null,
        // The viewer's own conversion from Cornerstone annotations to the read document.
        axes: measurementAxes({ ...annotation, metadata: { ...annotation.metadata, toolName: toolType } }, { frameOf, planeOf }),
      });
    }
  }
  return tools;
}

async function segSegments({ path, series_instance_uid: series }) {
  // OHIF hands the segmentation adapter the image ids of the SEG's source series, in stack order.
  const imageIds = job.images.filter((image) => image.series_instance_uid === series).map((image) => image.image_id);
  const { buffer } = readDataset(path);
  const result = await adaptersSEG.Cornerstone3D.Segmentation.createFromDICOMSegBuffer(imageIds, buffer, {
    metadataProvider: provider,
  });
  const voxels = new Map();
  for (const image of result.labelMapImages.flat()) {
    const pixels = image.getPixelData ? image.getPixelData() : image.voxelManager.getScalarData();
    for (const value of pixels) if (value) voxels.set(value, (voxels.get(value) || 0) + 1);
  }
  const described = result.segMetadata?.data || [];
  return [...voxels.keys()].sort((a, b) => a - b).map((number) => ({
    segment_number: number,
    label: described[number]?.SegmentLabel ?? null,
    tracking_uid: described[number]?.TrackingUID ?? null,
    voxels: voxels.get(number),
  }));
}

const answer = { sr: {}, seg: {} };
for (const path of job.sr || []) answer.sr[path] = srToolStates(path);
for (const entry of job.seg || []) answer.seg[entry.path] = await segSegments(entry);
process.stdout.write(JSON.stringify(answer));
