// jsdom has no DragEvent, which @lumino/dragdrop (loaded by @lumino/widgets) subclasses at import.
if (typeof globalThis.DragEvent === 'undefined') {
  (globalThis as { DragEvent?: unknown }).DragEvent = class DragEvent extends MouseEvent {};
}

// Dates show in the reader's locale and time zone: the reader of these tests reads en-US in UTC,
// so expectations are fixed strings whatever the machine's settings.
const localeString = Date.prototype.toLocaleString;
Date.prototype.toLocaleString = function (this: Date, locales?: Intl.LocalesArgument, options?: Intl.DateTimeFormatOptions) {
  return localeString.call(this, locales ?? 'en-US', { timeZone: 'UTC', ...options });
};
