/** Escapes text for HTML element content and quoted attribute values (`& < > " '`). */
export const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
