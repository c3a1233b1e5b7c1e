// What the page knows of the meeting on screen, shared by its modules.
export const state = {
  meetingId: null,
  meeting: null, // the meeting summary (item titles, options, order)
  tally: null, // the last tally shown
  forecast: null, // the campaign answer's forecast and its position: the margins the read side gives
  logHead: 0,
  generation: 0, // bumps on every meeting switch / sign-out so stale async work is dropped
};
