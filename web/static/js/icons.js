// Inline SVG icons. The page ships no icon font and the system fonts of a ward PC often lack
// emoji (a bell or a bed then shows as an empty box), so icons are drawn as SVG in the DOM: no
// extra request, allowed by the CSP, and coloured by the surrounding text (currentColor).

import { s } from './dom.js';

// Each icon is a list of [element, attributes] drawn on a 24 x 24 grid with a 2 px stroke.
const SHAPES = {
  bell: [
    ['path', { d: 'M6 17V11a6 6 0 0 1 12 0v6l2 2H4z' }],
    ['path', { d: 'M10 21.5a2.2 2.2 0 0 0 4 0' }],
  ],
  // A physiological alarm: warning triangle.
  warning: [
    ['path', { d: 'M12 3.5 2.5 20h19z' }],
    ['path', { d: 'M12 10v4.5' }],
    ['path', { d: 'M12 17.3v.2' }],
  ],
  // A technical alarm: a cog.
  technical: [
    ['circle', { cx: '12', cy: '12', r: '3' }],
    ['circle', { cx: '12', cy: '12', r: '6.5' }],
    ['path', { d: 'M12 2.5v3M12 18.5v3M2.5 12h3M18.5 12h3M5.3 5.3l2.1 2.1M16.6 16.6l2.1 2.1M5.3 18.7l2.1-2.1M16.6 7.4l2.1-2.1' }],
  ],
  broadcast: [
    ['path', { d: 'M3 10v4h3l8 5V5L6 10z' }],
    ['path', { d: 'M17.5 9a4 4 0 0 1 0 6' }],
  ],
  bed: [
    ['path', { d: 'M3 6v13M3 15h18v4M21 15v-3a3 3 0 0 0-3-3h-7v6' }],
    ['circle', { cx: '6.5', cy: '11.5', r: '1.6' }],
  ],
  person: [
    ['circle', { cx: '12', cy: '8', r: '4' }],
    ['path', { d: 'M4 21a8 8 0 0 1 16 0' }],
  ],
  triage: [['path', { d: 'M9 3h6v6h6v6h-6v6H9v-6H3V9h6z' }]],
  info: [
    ['circle', { cx: '12', cy: '12', r: '9' }],
    ['path', { d: 'M12 11v6' }],
    ['path', { d: 'M12 7.5v.2' }],
  ],
  close: [['path', { d: 'M6 6l12 12M18 6 6 18' }]],
};

/** An inline SVG icon, hidden from assistive technology (the control carries the label). */
export function icon(name, extraClass = '') {
  const shapes = SHAPES[name] || SHAPES.info;
  return s(
    'svg',
    {
      class: `icon icon-${name}${extraClass ? ` ${extraClass}` : ''}`,
      viewBox: '0 0 24 24',
      width: '24',
      height: '24',
      fill: 'none',
      stroke: 'currentColor',
      'stroke-width': '2',
      'stroke-linecap': 'round',
      'stroke-linejoin': 'round',
      'aria-hidden': 'true',
      focusable: 'false',
    },
    shapes.map(([tag, attrs]) => s(tag, attrs)),
  );
}
